"""SQL of the businesses domain: both tables are ``kernel.owned`` tables described by ``models.py``.

A business is owned by a user; an analysis by its business (the service checks the business first).
"""

from __future__ import annotations

from core_api.businesses.models import Business, BusinessAnalysis
from kernel.owned import OwnedTable

__all__ = ["analyses", "businesses"]

businesses = OwnedTable(Business.__table__)
analyses = OwnedTable(BusinessAnalysis.__table__, owner="business_id")

"""Businesses owned by users, and the astrological analyses listed and created under each."""

from __future__ import annotations

from core_api.businesses.service import owned_business_exists

__all__ = ["owned_business_exists"]

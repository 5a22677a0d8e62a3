"""Integrations domain: the seed's webhooks and workflows (tables only, until their issues land).

The public functions below purge this domain's logs for the retention policy (docs/schema.md).
"""

from __future__ import annotations

from integrations import repository
from integrations.repository import *  # noqa: F403  (its __all__: the purges and their counts)

__all__ = repository.__all__

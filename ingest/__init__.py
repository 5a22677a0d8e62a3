"""Ingest domain. ``keep_ledger_partitions`` is the contract with retention's partition upkeep: the
exactly-once ledger's week partitions, made ahead and dropped past the dedupe window (``ingest.ledger``)."""

from __future__ import annotations

from ingest.ledger import LedgerUpkeep
from ingest.ledger import upkeep as keep_ledger_partitions

__all__ = ["LedgerUpkeep", "keep_ledger_partitions"]

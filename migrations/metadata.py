"""The complete schema: importing this module registers every domain's tables on one metadata.

It lives beside the migrations, not in the kernel, so the kernel imports no domain code.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import kernel.models
from corp_astro import DOMAINS
from kernel.db import Base

__all__ = ["include_object", "metadata"]

# Every registered domain's tables, plus the kernel's and the integrations' (tables only, so far).
_DOMAIN_MODELS = (
    kernel.models,
    importlib.import_module("integrations.models"),
    *(importlib.import_module(f"{d}.models") for d in DOMAINS),
)
metadata = Base.metadata

# Partition children (analytics_events_p2026_11, ingest_message_ids_p2026_12_01, ..._default) are created by
# SQL, not by metadata.
_PARTITION_CHILD = re.compile(r"_(p\d{4}_\d{2}(?:_\d{2})?|default)$")


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Hide partition children from autogenerate so only the parents are compared with metadata.

    PostgreSQL also clones a foreign key that references a partitioned table once per referenced
    partition; those internal clones point at children and are hidden too.
    """
    names = [name or ""]
    if type_ != "table":
        names.append(getattr(getattr(obj, "table", None), "name", "") or "")
    if type_ == "foreign_key_constraint":
        names.append(getattr(getattr(obj, "referred_table", None), "name", "") or "")
    return not any(_PARTITION_CHILD.search(n) for n in names)

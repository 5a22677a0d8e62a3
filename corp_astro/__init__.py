"""The one registry of domains: the app factory and the CLI find every domain here, and nowhere else.

Each entry is a domain package. The kernel loads, by convention and only when asked, its ``routes``
(``route_handlers``, optional ``fast_routes``, ``on_startup``/``on_shutdown``), ``jobs``
(``register_jobs``), ``cli`` (``register``) and ``hooks`` (``on_user_erased``) modules.
"""

from __future__ import annotations

__all__ = ["DOMAINS"]

DOMAINS = (
    "core_api.accounts",
    "core_api.businesses",
    "core_api.reports",
    "core_api.notifications",
    "ingest",
    "experiments",
    "aggregation",
    "retention",
    "integrations",
    "operations",
    "webapp",
)

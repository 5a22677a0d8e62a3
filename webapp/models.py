"""The web app owns no table: it reads and changes data only through the other domains' public API."""

from __future__ import annotations

__all__: list[str] = []

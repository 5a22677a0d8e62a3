"""The service's app: the kernel's factory over every registered domain."""

from __future__ import annotations

from corp_astro import DOMAINS
from kernel.app import App
from kernel.app import create_app as _create_app
from kernel.settings import Settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> App:
    """The app with every domain of the registry (uvicorn's factory)."""
    return _create_app(settings, DOMAINS)

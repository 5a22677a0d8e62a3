"""``corp-astro``: the kernel's command root with every registered domain's commands."""

from __future__ import annotations

import logging
import sys

from corp_astro import DOMAINS
from kernel.cli import attach_domains, main

__all__ = ["main"]

attach_domains(main, DOMAINS, app_factory="corp_astro.app:create_app")

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())

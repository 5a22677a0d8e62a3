"""Integrations domain: the seed's webhooks and workflows (tables only, until their issues land)."""

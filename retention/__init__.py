"""Retention domain."""

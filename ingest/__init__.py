"""Ingest domain."""

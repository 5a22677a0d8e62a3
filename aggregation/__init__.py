"""Aggregation domain."""

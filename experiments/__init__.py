"""Experiments domain."""

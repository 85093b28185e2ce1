"""Shared helpers: box geometry, logging, files, devices."""

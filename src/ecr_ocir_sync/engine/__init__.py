"""Copying one image to N destinations, and propagating deletions."""

"""Browser and sandbox fixtures (being written)."""

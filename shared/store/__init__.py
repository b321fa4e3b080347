"""Persistence: the ports the flows use (`ports`), the records they hold, and their adapters."""

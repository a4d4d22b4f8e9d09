"""semfs: a semantic image filesystem (FUSE passthrough plus virtual search views)."""

__version__ = "0.1.0"

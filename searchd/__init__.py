"""searchd: full-text search for a folder of articles."""

__version__ = "0.1.0"

"""The Typesense engine: every use of Typesense (and of its client) in searchd is in this package:
the cluster connection (cluster.py), the documents and collections (schema.py, store.py), the
writer (writer.py), query compilation (compile.py) and the read side (reader.py)."""

from .engine import TypesenseEngine

__all__ = ["TypesenseEngine"]

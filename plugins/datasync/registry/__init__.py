"""The multi-source registry: source connectors and mappings.

Phase 1 is the parts: :mod:`.connectors` read any registered source as batches of records,
:mod:`.mapping` turns records into target rows (or rejects) and owns the target table's shape.
The runner DAG puts them on the shared sync engine (:mod:`datasync.engine`).
"""

"""The sync engine every pipeline shares: bulk UPSERT, cursors beside the data, run log, rejects."""

from datasync.engine.frame import RunFrame
from datasync.engine.sources import RowsSource, SqlSource
from datasync.engine.state import Counts, Reject
from datasync.engine.sync import RejectThresholdExceeded, SyncResult, SyncSpec, run_sync
from datasync.engine.table import SchemaMismatch

__all__ = [
    "Counts", "Reject", "RejectThresholdExceeded", "RowsSource", "RunFrame", "SchemaMismatch", "SqlSource",
    "SyncResult", "SyncSpec", "run_sync",
]

"""Where the package finds its SQL and demo files: ``include/`` beside ``plugins/``.

Deployments that mount ``include/`` elsewhere set ``DATASYNC_INCLUDE_DIR``.
"""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
INCLUDE_DIR = Path(os.environ.get("DATASYNC_INCLUDE_DIR", REPO_ROOT / "include"))
SQL_DIR = INCLUDE_DIR / "sql"
DEMO_DIR = INCLUDE_DIR / "demo"

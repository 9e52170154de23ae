"""`make bench`: the engine benchmark (bench_engine.py), then the registry runner under a real scheduler
(bench_registry_cluster.py: 500 sources x 2,000 records, two Celery workers of 8). The others run on
their own: bench_registry.py (dag.test and the runner alone), bench_tekmetric.py."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

if __name__ == "__main__":
    failed = 0
    for argv in (["bench_engine.py"], ["bench_registry_cluster.py", "--concurrency", "8"]):
        print(f"=== bench/{argv[0]}", flush=True)
        failed |= subprocess.call([sys.executable, str(HERE / argv[0]), *argv[1:]])
    sys.exit(1 if failed else 0)

"""`make bench`: the registry runner under a real scheduler (bench_registry_cluster.py, 500 sources x 2,000
records, two Celery workers). The other benchmarks run on their own: bench_registry.py (dag.test and the
runner alone), bench_engine.py, bench_tekmetric.py. Arguments are passed on."""

import subprocess
import sys
from pathlib import Path

if __name__ == "__main__":
    script = Path(__file__).with_name("bench_registry_cluster.py")
    sys.exit(subprocess.call([sys.executable, str(script), "--concurrency", "8", *sys.argv[1:]]))

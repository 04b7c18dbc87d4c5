"""Both test trees, the kit's tests/ and the wheel's workloads/tests/, share one plugin:
workloads/tests/workload_fixtures.py (one Spark session, the `spark` mark, the second leg's modules)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "workloads" / "tests"))

pytest_plugins = ["workload_fixtures"]

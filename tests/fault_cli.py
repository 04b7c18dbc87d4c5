"""`mlkit` as a subprocess for the fault tests, with one test-only hook.

``MLKIT_FAULT_PAUSE=<task key>``: when that task starts, touch ``$MLKIT_FAULT_DIR/<key>.started`` and
wait up to 30 s for ``$MLKIT_FAULT_DIR/<key>.go`` before running it, so a test can interrupt the run,
or kill the tracking server, at a known task. Nothing else differs from `.venv/bin/mlkit`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def _install() -> None:
    key = os.environ.get("MLKIT_FAULT_PAUSE")
    if not key:
        return
    from mlkit.local import runner

    where = Path(os.environ["MLKIT_FAULT_DIR"])
    real = runner.run_task

    def paused(entry_point, rt, params):
        if rt.context.current_task == key:
            (where / f"{key}.started").touch()
            deadline = time.monotonic() + 30
            while not (where / f"{key}.go").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
        return real(entry_point, rt, params)

    runner.run_task = paused


if __name__ == "__main__":
    _install()
    from mlkit.cli import app

    sys.argv[0] = "mlkit"
    app()

"""`mlkit check` for every environment vs. synth alone, measured in one run.

synth: `mlkit synth --no-policy` (every environment) in a subprocess.
check: `mlkit check` (every cloud environment: synth with the policy aspects + checkov on each
stack + merge) in a subprocess. Both pay the same Python/jsii start-up, as a user does.
Runs alternate; medians are reported with the check/synth ratio (goal: <= 2.0).

    .venv/bin/python bench/check.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def wall(cmd: list[str], env: dict[str, str], ok_codes: tuple[int, ...] = (0,)) -> float:
    started = time.perf_counter()
    p = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if p.returncode not in ok_codes:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr.decode()[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (alternating); medians are reported")
    args = parser.parse_args()
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    mlkit = [sys.executable, "-c", "from mlkit.cli import app; app()"]
    synth_t, check_t = [], []
    with tempfile.TemporaryDirectory(prefix="mlkit-bench-check-") as tmp:
        for i in range(args.repeat):
            synth_t.append(wall([*mlkit, "synth", "--no-policy", "--out", f"{tmp}/synth{i}/cdktf.out"], env))
            # Exit 1 (unsuppressed errors) is a verdict, not a failure of the benchmark.
            check_t.append(wall([*mlkit, "check", "--format", "json", "--out", f"{tmp}/check{i}.json",
                                 "--synth-out", f"{tmp}/check{i}/cdktf.out"], env, ok_codes=(0, 1)))
    s, c = statistics.median(synth_t), statistics.median(check_t)
    print(f"synth alone (all environments): {s:6.2f} s  runs {', '.join(f'{t:.2f}' for t in synth_t)}")
    print(f"mlkit check (all environments): {c:6.2f} s  runs {', '.join(f'{t:.2f}' for t in check_t)}")
    print(f"ratio check/synth: {c / s:.2f} (goal <= 2.0)")


if __name__ == "__main__":
    main()

"""Full-app synth vs. its floor, measured in one run.

synth: `python main.py` (every environment) in a subprocess.
floor: a subprocess that only imports cdktn and the provider submodules the stacks import
(found by scanning stacks/ for `from cdktn_provider_x.y import`), which is the cost any synth pays.
Wall time and peak RSS of the whole process tree (Python + the jsii Node runtime it starts),
sampled every 10 ms. Prints both and the synth/floor ratios (goal: time ratio <= 1.2).

    .venv/bin/python bench/synth.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent


def provider_modules() -> list[str]:
    found = set()
    for path in (REPO / "stacks").rglob("*.py"):
        found.update(re.findall(r"^from (cdktn_provider_\w+\.\w+) import", path.read_text(), re.M))
    return sorted(found)


def measure(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(wall seconds, peak summed RSS bytes of the process tree)."""
    started = time.perf_counter()
    proc = psutil.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [proc, *proc.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass  # a process ended between listing and reading: the next sample counts
        time.sleep(0.01)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr.read().decode()[-2000:]}")
    return wall, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (alternating); medians are reported")
    args = parser.parse_args()
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    modules = provider_modules()
    floor_cmd = [sys.executable, "-c", "import cdktn\n" + "".join(f"import {m}\n" for m in modules)]
    synth, bare, floor = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        synth_cmd = [sys.executable, str(REPO / "main.py")]
        env_synth = {**env, "CDKTF_OUTDIR": str(Path(tmp) / "cdktf.out")}
        # The same synth without the policy aspects (MLKIT_NO_POLICY=1), to show what the gate costs.
        env_bare = {**env_synth, "MLKIT_NO_POLICY": "1"}
        for _ in range(args.repeat):
            floor.append(measure(floor_cmd, env))
            synth.append(measure(synth_cmd, env_synth))
            bare.append(measure(synth_cmd, env_bare))
        stacks = sorted(p.name for p in (Path(tmp) / "cdktf.out" / "stacks").iterdir())
    s_wall, s_rss = statistics.median(w for w, _ in synth), statistics.median(r for _, r in synth)
    f_wall, f_rss = statistics.median(w for w, _ in floor), statistics.median(r for _, r in floor)
    b_wall = statistics.median(w for w, _ in bare)
    mb = 1024 * 1024
    print(f"stacks synthesized: {len(stacks)} ({', '.join(stacks)})")
    print(f"floor imports: cdktn + {len(modules)} provider submodules")
    print(f"{'':8}{'wall s (median)':>17}{'runs':>24}{'peak RSS MB':>14}")
    print(f"{'synth':8}{s_wall:>17.2f}{' '.join(f'{w:.2f}' for w, _ in synth):>24}{s_rss / mb:>14.0f}")
    print(f"{'no-policy':8}{b_wall:>17.2f}{' '.join(f'{w:.2f}' for w, _ in bare):>24}")
    print(f"{'floor':8}{f_wall:>17.2f}{' '.join(f'{w:.2f}' for w, _ in floor):>24}{f_rss / mb:>14.0f}")
    load = os.getloadavg()[0]
    goal = "MET" if s_wall / f_wall <= 1.2 else "NOT MET"
    print(f"synth/floor: time {s_wall / f_wall:.2f} (goal <= 1.2: {goal}), peak RSS {s_rss / f_rss:.2f}; "
          f"without the policy gate {b_wall / f_wall:.2f}; load average {load:.2f}")


if __name__ == "__main__":
    main()

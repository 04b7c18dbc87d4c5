"""Drift analysis on a large plan vs the bare `terraform show -json` parse of the same plan.

Builds a real fixture once (600 terraform_data resources, applied with a local backend, then
60 of them changed out of band in the state), plans it with real terraform, and times:
  bare  = json.loads of the `terraform show -json` output
  drift = json.loads + mlkit's drift analysis (plan shape check, identity-keyed attribute diffs,
          sensitive-value masking, protected categories, allowlist) + Markdown and JSON report
Both in-process on the same text, best of N runs; prints the ratio (goal <= 1.2). Also prints
the end-to-end ratio including the `terraform show -json` subprocess that both need.
Run: .venv/bin/python bench/drift.py [--resources 600]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlkit.ops.drift import DriftReport, analyze, load_allowlist  # noqa: E402
from mlkit.ops.terraform import TF_ENV, find_terraform  # noqa: E402


def build(workdir: Path, n: int, changed: int) -> str:
    tf = find_terraform()
    resources = {f"r{i}": {"input": {"name": f"res-{i}", "sku": "Standard", "tags": {"environment": "bench",
                                                                                      "index": str(i)},
                                     "rules": [{"port": p, "allow": True} for p in range(4)]}} for i in range(n)}
    (workdir / "main.tf.json").write_text(json.dumps({"resource": {"terraform_data": resources},
                                                      "terraform": {"backend": {"local": {"path": "s.tfstate"}}}}))
    env = {**os.environ, **TF_ENV}
    run = lambda *a: subprocess.run([tf, *a], cwd=workdir, env=env, check=True, capture_output=True, text=True)  # noqa: E731
    run("init", "-input=false")
    run("apply", "-input=false", "-auto-approve")
    state = json.loads((workdir / "s.tfstate").read_text())
    for r in state["resources"][:changed]:  # out of band: someone edited these
        value = r["instances"][0]["attributes"]["input"]["value"]
        value["sku"] = "Premium"
        value["rules"][2]["allow"] = False
    state["serial"] += 1
    (workdir / "s.tfstate").write_text(json.dumps(state))
    run("plan", "-input=false", "-refresh=false", "-out=p.tfplan")
    return run("show", "-json", "p.tfplan").stdout


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resources", type=int, default=600)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlkit-bench-") as tmp:
        t0 = time.perf_counter()
        text = build(Path(tmp), args.resources, args.resources // 10)
        build_s = time.perf_counter() - t0
        tf = find_terraform()
        show = best(lambda: subprocess.run([tf, "show", "-json", "p.tfplan"], cwd=tmp, capture_output=True,
                                           check=True), 3)
    allow = load_allowlist()
    plan = json.loads(text)
    items = analyze("bench", None, plan, allow)
    bare = best(lambda: json.loads(text), args.repeat)

    def full() -> None:
        report = DriftReport("bench", analyze("bench", None, json.loads(text), allow))
        report.markdown()
        json.dumps(report.as_dict(), default=str)
    drift = best(full, args.repeat)
    print(f"plan: {len(plan['resource_changes'])} resources, {len(text) / 1e6:.1f} MB JSON, "
          f"{len(items)} drift items (fixture built in {build_s:.1f} s)")
    print(f"bare json parse      {bare * 1e3:8.1f} ms")
    print(f"parse + drift report {drift * 1e3:8.1f} ms")
    print(f"ratio (in-process)   {drift / bare:8.2f}  (goal <= 1.2)")
    print(f"ratio incl. `terraform show -json` ({show * 1e3:.0f} ms): {(show + drift) / (show + bare):.2f}")
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

"""Runs inside .venv-checkov (as `python -P`, so policies/checkov.py does not shadow checkov): checkov's own CLI entry point, once per job, in one warm process.

Started by :mod:`policies.checkov` *before* the synth, so checkov's ~3 s import overlaps it.
Each job is the argument list of ``checkov -f <file> --framework terraform_json --skip-download
-o json --quiet [--skip-check ...]``, executed by ``checkov.main.Checkov(argv).run()`` exactly as
the ``checkov`` script does. Protocol: one JSON object per line on stdin (a job) and stdout
(a result); the first output line announces readiness. Imports nothing from mlkit.
"""

import io
import json
import sys
from contextlib import redirect_stdout


def main() -> int:
    out = sys.stdout
    try:
        from checkov.main import Checkov
        from checkov.version import version
    except Exception as e:  # checkov missing or broken in this venv
        out.write(json.dumps({"ready": False, "error": f"{type(e).__name__}: {e}"}) + "\n")
        out.flush()
        return 1
    out.write(json.dumps({"ready": True, "version": version}) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            break
        job = json.loads(line)
        buf = io.StringIO()
        result = {"id": job["id"]}
        try:
            with redirect_stdout(buf):
                rc = Checkov(argv=job["argv"]).run()
            result.update(rc=rc, output=json.loads(buf.getvalue() or "null"))
        except SystemExit as e:
            result.update(rc=e.code, error=f"checkov exited with {e.code}: {buf.getvalue()[-2000:]}")
        except Exception as e:
            result.update(rc=2, error=f"{type(e).__name__}: {e}")
        out.write(json.dumps(result) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

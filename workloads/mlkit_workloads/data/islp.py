"""ISLP's ``Default`` data (10k credit card customers, 3.3 % defaults): the classifier's default data.

Read straight from the installed package's data folder. ISLP is installed without its
dependencies, so importing it would fail; finding it does not import it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import WorkloadError


def default_csv() -> Path:
    spec = importlib.util.find_spec("ISLP")
    if spec is None or not spec.submodule_search_locations:
        raise WorkloadError("source format 'islp_default' needs the ISLP package (pip install --no-deps ISLP==0.6.0)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "Default.csv"
    if not path.is_file():
        raise WorkloadError(f"ISLP is installed but {path} is missing")
    return path

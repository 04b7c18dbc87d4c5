"""A single model behind the API: the classifier (sklearn Pipeline + XGBoost, logged by
train_classifier with ``mlflow.sklearn``), one model for every request.

A request's rows are scored with the model's positive-class probability and labelled at the
model's own threshold (the ``FixedThresholdClassifier`` train_classifier tuned on validation rows).
The input columns and their types come from the version's MLflow signature; each must be one of
the environment's classifier features (``workloads.classifier.columns``), else the version is not
served (the one being served stays).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .registry import LoadedVersion, RegistrySource
from .service import VersionWatcher

# MLflow signature column types -> the JSON type a request gives.
STRING_TYPES = ("string",)
NUMBER_TYPES = ("double", "float", "long", "integer", "boolean")


@dataclass(frozen=True)
class InputColumn:
    name: str
    kind: str  # "string" or "number"


def signature_columns(model_dir: Path) -> list[InputColumn] | None:
    """The input columns of the model's MLflow signature (None: the version has no signature)."""
    from mlflow.models import Model

    sig = Model.load(str(model_dir / "MLmodel")).signature
    if sig is None or sig.inputs is None:
        return None
    out = []
    for col in sig.inputs.inputs:
        t = str(getattr(col.type, "name", col.type)).lower()
        out.append(InputColumn(col.name, "string" if t in STRING_TYPES else "number"))
    return out


def input_example(model_dir: Path) -> list[dict[str, Any]]:
    """The rows of the version's logged input example (``input_example.json``), or []."""
    path = model_dir / "input_example.json"
    if not path.is_file():
        return []
    doc = json.loads(path.read_text())
    if isinstance(doc, dict) and "columns" in doc and "data" in doc:  # pandas "split" orient
        return [dict(zip(doc["columns"], row)) for row in doc["data"]]
    if isinstance(doc, list):
        return [r for r in doc if isinstance(r, dict)]
    return []


class ClassifierModel:
    """The loaded classifier: probability of the positive class and the label at its threshold."""

    def __init__(self, model: Any, columns: list[InputColumn], example: list[dict[str, Any]]):
        self.model, self.columns, self.example = model, columns, example
        # FixedThresholdClassifier keeps the tuned cut; a plain classifier labels at 0.5.
        self.threshold = float(getattr(model, "threshold", 0.5))
        self.names = [c.name for c in columns]

    def probabilities(self, rows: list[dict[str, Any]]) -> np.ndarray:
        import pandas as pd

        frame = pd.DataFrame.from_records(rows, columns=self.names)
        for c in self.columns:
            # Missing values as the classifier job's frame has them (classifier.model.xy): NaN, which the
            # imputers fill. A None category would pass the imputer as a category of its own.
            col = frame[c.name]
            frame[c.name] = (col.astype(object).where(col.notna(), np.nan) if c.kind == "string"
                             else pd.to_numeric(col, errors="coerce").astype(float))
        return np.asarray(self.model.predict_proba(frame)[:, 1], dtype=float)

    def labels(self, probabilities: np.ndarray) -> np.ndarray:
        return (probabilities >= self.threshold).astype(int)


class SingleModelService(VersionWatcher):
    imports = ("sklearn", "imblearn", "xgboost")

    def __init__(self, source: RegistrySource, features: list[str], poll_seconds: float = 30, job: str = ""):
        super().__init__(source, poll_seconds, job)
        self.features = list(features)

    def open(self, version: str, run_id: str) -> LoadedVersion:
        import mlflow.sklearn

        root = self.source.download(version)
        columns = signature_columns(root)
        if columns is None:  # no signature: the environment's features, as numbers
            columns = [InputColumn(f, "number") for f in self.features]
        unknown = [c.name for c in columns if c.name not in self.features]
        if unknown:
            raise ValueError(f"the model's inputs {[c.name for c in columns]} include {unknown}, which are not "
                             f"the configured classifier features {self.features}")
        model = mlflow.sklearn.load_model(str(root))
        if not hasattr(model, "predict_proba"):
            raise ValueError(f"{type(model).__name__} has no predict_proba: not a classifier")
        return LoadedVersion(self.source.name, version, run_id, ClassifierModel(model, columns, input_example(root)))

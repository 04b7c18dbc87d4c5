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

from ..trees import Trees
from .registry import LoadedVersion, RegistrySource
from .service import VersionWatcher

# MLflow signature column types -> the JSON type a request gives.
STRING_TYPES = ("string",)
NUMBER_TYPES = ("double", "float", "long", "integer", "boolean")
TREE_ROWS = 8  # up to this many rows walk the trees in Python; more go through inplace_predict

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
        self.compiled = self._compiled()

    def _compiled(self) -> "CompiledPipeline | None":
        """The numpy path, if it gives the model's own probabilities on the input example and on a row
        of missing values (else the model itself answers every request)."""
        compiled = CompiledPipeline.of(self.model)
        if compiled is None:
            return None
        probe = [*(self.example or []), {c.name: None for c in self.columns}]
        try:
            same = np.allclose(compiled.probabilities(probe), self._sklearn(probe), rtol=0, atol=1e-6)
        except Exception:  # noqa: BLE001 - any surprise means: do not use it
            same = False
        return compiled if same else None

    def probabilities(self, rows: list[dict[str, Any]]) -> np.ndarray:
        return self.compiled.probabilities(rows) if self.compiled is not None else self._sklearn(rows)

    def _sklearn(self, rows: list[dict[str, Any]]) -> np.ndarray:
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


class CompiledPipeline:
    """The classifier job's fitted pipeline (impute + scale numbers, impute + one-hot categories,
    XGBoost) as plain numpy for a few rows: the same numbers as ``predict_proba`` without pandas and
    the ColumnTransformer's per-call overhead (tens of milliseconds under load for one row, measured by
    bench/serving.py). :meth:`of` returns None for any pipeline it does not know step by step; the
    service then uses the model itself. A compiled pipeline is checked against the model at load."""

    def __init__(self, numeric: list[tuple[str, float, float, float]], categorical: list[tuple[str, Any, list]],
                 booster: Any, iteration_range: tuple[int, int]):
        self.numeric, self.categorical = numeric, categorical  # (name, fill, mean, scale) / (name, fill, cats)
        self.booster, self.iteration_range = booster, iteration_range
        self.width = len(numeric) + sum(len(c) for _, _, c in categorical)
        self.index = [{v: i for i, v in enumerate(cats)} for _, _, cats in categorical]
        # A few rows walk the trees in Python (trees.Trees: ~5x cheaper than inplace_predict per row).
        probe = np.vstack([np.zeros(self.width), np.full(self.width, np.nan), np.linspace(-3, 3, self.width)])
        self.trees = Trees.checked(booster, iteration_range, probe.astype(np.float32))

    @classmethod
    def of(cls, model: Any) -> "CompiledPipeline | None":
        try:
            from sklearn.impute import SimpleImputer
            from sklearn.preprocessing import OneHotEncoder, StandardScaler
            from xgboost import XGBClassifier

            pipe = getattr(model, "estimator_", model)
            steps = dict(pipe.steps)
            prep, clf = steps["prep"], pipe.steps[-1][1]
            if not isinstance(clf, XGBClassifier) or getattr(prep, "remainder", "drop") != "drop":
                return None
            numeric, categorical = [], []
            for name, transformer, columns in prep.transformers_:
                if name == "remainder":
                    continue
                parts = [s for _, s in transformer.steps]
                if name == "num" and [type(s) for s in parts] == [SimpleImputer, StandardScaler]:
                    imp, scaler = parts
                    mean = scaler.mean_ if scaler.with_mean else np.zeros(len(columns))
                    scale = scaler.scale_ if scaler.with_std else np.ones(len(columns))
                    numeric += [(c, float(f), float(m), float(s)) for c, f, m, s in zip(columns, imp.statistics_, mean, scale)]
                elif name == "cat" and [type(s) for s in parts] == [SimpleImputer, OneHotEncoder]:
                    imp, enc = parts
                    if enc.drop is not None or enc.handle_unknown != "ignore" or getattr(enc, "_infrequent_enabled", False):
                        return None
                    categorical += [(c, f, list(cats)) for c, f, cats in zip(columns, imp.statistics_, enc.categories_)]
                else:
                    return None
            best = getattr(clf, "best_iteration", None)
            rounds = (best + 1) if best is not None else clf.get_booster().num_boosted_rounds()
            return cls(numeric, categorical, clf.get_booster(), (0, rounds))
        except (AttributeError, KeyError, TypeError, ValueError, ImportError):
            return None

    def transform(self, rows: list[dict[str, Any]]) -> np.ndarray:
        x = np.zeros((len(rows), self.width), dtype=np.float64)
        n = len(self.numeric)
        for i, row in enumerate(rows):
            for j, (name, fill, mean, scale) in enumerate(self.numeric):
                v = row.get(name)
                v = fill if v is None or v != v else float(v)
                x[i, j] = (v - mean) / scale
            at = n
            for (name, fill, cats), index in zip(self.categorical, self.index):
                v = row.get(name)
                v = fill if v is None or (isinstance(v, float) and v != v) else str(v)
                k = index.get(v)
                if k is not None:  # an unknown category is all zeros (handle_unknown="ignore")
                    x[i, at + k] = 1.0
                at += len(cats)
        # XGBoost reads float32: clip what float32 cannot hold (a huge input) instead of passing inf.
        return np.clip(x, -3.4e38, 3.4e38).astype(np.float32)

    def probabilities(self, rows: list[dict[str, Any]]) -> np.ndarray:
        x = self.transform(rows)
        if self.trees is not None and len(rows) <= TREE_ROWS:
            return np.array([self.trees.predict(row) for row in x])
        out = self.booster.inplace_predict(x, iteration_range=self.iteration_range)
        return np.asarray(out, dtype=float).reshape(len(rows))

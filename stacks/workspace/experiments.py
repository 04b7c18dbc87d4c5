"""MLflow experiments the jobs log to (one per job)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cdktn_provider_databricks.mlflow_experiment import MlflowExperiment, MlflowExperimentTags
from constructs import Construct


@dataclass(frozen=True)
class TrackingExperimentProps:
    name: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)


class TrackingExperiment(Construct):
    def __init__(self, scope: Construct, id_: str, props: TrackingExperimentProps):
        super().__init__(scope, id_)
        if not props.name.startswith("/"):
            raise ValueError(f"experiment name {props.name!r} must be an absolute workspace path")
        self.props = props
        self.experiment = MlflowExperiment(
            self, "experiment", name=props.name, description=props.description or None,
            # Experiments take tags as key/value blocks rather than a map.
            tags=[MlflowExperimentTags(key=k, value=v) for k, v in props.tags.items()] or None)

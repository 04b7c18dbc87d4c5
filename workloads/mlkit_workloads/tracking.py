"""Thin MLflow helpers shared by the tasks: reachability, pip requirements, aliases."""

from __future__ import annotations

from .errors import TrackingUnreachable, WorkloadError

CHAMPION, PREVIOUS = "champion", "previous_champion"


def check_reachable() -> str:
    """Fail early, with the URI in the message, if the tracking server does not answer."""
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = mlflow.get_tracking_uri()
    if uri.startswith(("http://", "https://")):
        import urllib.request

        try:
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5).read()
        except OSError as e:
            raise TrackingUnreachable(uri, getattr(e, "reason", None) or str(e)) from None
    try:
        mlflow.search_experiments(max_results=1)
    except MlflowException as e:
        raise TrackingUnreachable(uri, str(e).splitlines()[0]) from None
    return uri


def pip_requirements(*extra: str) -> list[str]:
    """Pinned to what is installed, so a loaded model gets the libraries it was trained with."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("mlflow-skinny", "xgboost-cpu", "pandas", "numpy", "pyarrow", *extra):
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            if dist == "xgboost-cpu":
                out.append(f"xgboost=={version('xgboost')}")
    return out


def champion_version(model: str) -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient().get_model_version_by_alias(model, CHAMPION).version
    except MlflowException:
        return None


def require_champion(model: str) -> str:
    v = champion_version(model)
    if v is None:
        raise WorkloadError(f"registered model {model!r} has no '{CHAMPION}' alias yet: "
                            "train and promote a version first")
    return v

"""train_classifier: Optuna over Spark (one child run per trial), best refit, logged and registered.

The search is ``mlflow.pyspark.optuna.MlflowSparkStudy``: the study is an MLflow run (the parent),
each trial is a nested child run, and Spark runs the trials in parallel tasks. The data is small
(single-node sized), so it travels to the tasks inside the objective's closure.
"""

from __future__ import annotations

import time

from .classifier.model import best_threshold, build, evaluate, split, suggest, with_threshold, xy
from .errors import DataError
from .model_names import full_model_name
from .runtime import Runtime, code_version, experiment
from .tracking import check_reachable, pip_requirements, record_training, reuse_training, training_tags


def make_objective(cfg, x_fit, y_fit, x_val, y_val, tracking_uri: str):
    def objective(trial) -> float:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)
        model = build(cfg, suggest(trial, cfg.search.max_rounds)).fit(x_fit, y_fit)
        proba = model.predict_proba(x_val)[:, 1]
        threshold = best_threshold(y_val, proba)
        trial.set_user_attr("threshold", threshold)
        scores = {**evaluate(y_val, proba, threshold), "threshold": threshold}
        # trial._trial_id is the child run id in MlflowStorage: log every metric, not only the objective.
        mlflow.MlflowClient().log_batch(trial._trial_id, metrics=[
            mlflow.entities.Metric(f"val_{k}", v, int(time.time() * 1000), 0) for k, v in scores.items()])
        return scores["roc_auc"]

    return objective


def log_model(model, example, registered_name: str):
    """Log the fitted classifier into the active run and register it: sklearn flavour (what the
    scoring service loads), its input example (the service's OpenAPI example and the signature)."""
    import mlflow

    return mlflow.sklearn.log_model(
        model, name="model", serialization_format="cloudpickle",
        pip_requirements=pip_requirements("scikit-learn", "imbalanced-learn", "cloudpickle"),
        input_example=example, registered_model_name=registered_name)


def fail_open_runs(parent_run_id: str) -> None:
    """Mark the study's run and its still-running trial runs FAILED (the study opened them through
    its storage, not through ``mlflow.start_run``, so nothing else ends them). Best effort: with the
    tracking server gone they cannot be reached at all."""
    import mlflow

    client = mlflow.MlflowClient()
    try:
        parent = client.get_run(parent_run_id)
        children = client.search_runs([parent.info.experiment_id],
                                      f"tags.mlflow.parentRunId = '{parent_run_id}' and attributes.status = 'RUNNING'")
        for r in [*children, parent]:
            if r.info.status == "RUNNING":
                client.set_terminated(r.info.run_id, "FAILED")
    except Exception:  # noqa: BLE001 - the original error is what the user needs to see
        pass


def run(rt: Runtime) -> dict:
    import mlflow
    import optuna
    from mlflow.optuna.storage import MlflowStorage
    from mlflow.pyspark.optuna.study import MlflowSparkStudy

    cfg = rt.settings.classifier
    table, version = rt.context.get("ingest", "table"), int(rt.context.get("ingest", "table_version"))
    check_reachable()
    trained_on = training_tags(cfg, rt.tables.path(table), version)
    skipped = reuse_training(rt, full_model_name(rt.settings.tracking.registry, cfg.registered_model), trained_on)
    if skipped is not None:  # the numbers the summary shows come from the run that trained it
        prior = mlflow.MlflowClient().get_run(skipped["run_id"]).data
        skipped.update({"trials": int(prior.params.get("n_trials", 0)),
                        **{k: round(v, 4) for k, v in prior.metrics.items() if k.startswith("test_")}})
        return skipped
    exp_id = experiment(rt, "classifier")
    df = rt.tables.read_pandas(table, version)
    x, y = xy(df, cfg)
    if y.sum() < 10 or (len(y) - y.sum()) < 10:
        raise DataError(f"table {table} v{version}", [f"column {cfg.columns.target!r}: need at least 10 rows of each "
                                                      f"class, found {int(y.sum())} equal to {cfg.columns.positive_label!r} "
                                                      f"and {int(len(y) - y.sum())} other"])
    x_train, x_test, y_train, y_test = split(x, y, cfg.test_size)
    # Tuning never sees the test rows: trials score on a stratified validation slice of train.
    x_fit, x_val, y_fit, y_val = split(x_train, y_train, 0.25, seed=7)

    cores = rt.spark.sparkContext.defaultParallelism
    study_name = f"classifier-{rt.env}-{int(time.time())}"
    rt.say(f"{cfg.search.n_trials} trials on {min(cores, cfg.search.n_trials)} Spark tasks")
    study = MlflowSparkStudy(study_name, MlflowStorage(experiment_id=exp_id),
                             sampler=optuna.samplers.TPESampler(seed=42), direction="maximize")
    t0 = time.perf_counter()
    try:
        study.optimize(make_objective(cfg, x_fit, y_fit, x_val, y_val, mlflow.get_tracking_uri()),
                       n_trials=cfg.search.n_trials, n_jobs=min(cores, cfg.search.n_trials),
                       timeout=cfg.search.timeout_seconds)
    except BaseException:  # an interrupt or a failed trial: the study's runs must not stay RUNNING
        fail_open_runs(study._study_id)
        raise
    search_seconds = time.perf_counter() - t0
    best = study.best_trial
    parent_run_id = study._study_id  # the study's run: the trials' parent

    threshold = float(best.user_attrs.get("threshold", 0.5))
    pipeline = build(cfg, suggest(optuna.trial.FixedTrial(best.params), cfg.search.max_rounds))
    model = with_threshold(pipeline, threshold).fit(x_train, y_train)
    test = evaluate(y_test, model.predict_proba(x_test)[:, 1], threshold)
    with mlflow.start_run(run_id=parent_run_id):
        mlflow.set_tag("mlflow.runName", f"train_classifier {rt.env}")
        mlflow.log_params({"data_table": table, "data_table_version": version, "data_path": rt.tables.path(table),
                           "code_version": code_version(), "env": rt.env, "n_trials": cfg.search.n_trials,
                           "oversampling": cfg.oversampling, "test_size": cfg.test_size, "threshold": threshold,
                           **{f"best_{k}": v for k, v in best.params.items()}})
        mlflow.log_metrics({**{f"test_{k}": v for k, v in test.items()}, "best_val_roc_auc": best.value,
                            "search_seconds": search_seconds, "rows_train": len(y_train), "rows_test": len(y_test)})
        info = log_model(model, x_test.head(5), full_model_name(rt.settings.tracking.registry, cfg.registered_model))
        mlflow.set_tags({"model_version": str(info.registered_model_version), "job": "classifier"})
    record_training(full_model_name(rt.settings.tracking.registry, cfg.registered_model), str(info.registered_model_version), parent_run_id, trained_on)
    out = {"run_id": parent_run_id, "model_name": full_model_name(rt.settings.tracking.registry, cfg.registered_model),
           "model_version": str(info.registered_model_version), "trials": len(study.trials),
           "best_params": best.params, **{f"test_{k}": round(v, 4) for k, v in test.items()},
           "search_seconds": round(search_seconds, 2)}
    for k, v in out.items():
        rt.context.set(k, v)
    return out

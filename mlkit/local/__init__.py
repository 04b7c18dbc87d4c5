"""The local runner: MLflow server lifecycle, a local Spark session, the job graph in order."""

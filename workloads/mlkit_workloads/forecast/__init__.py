"""Many-models forecasting: one XGBoost model per group, trained in parallel with Spark."""

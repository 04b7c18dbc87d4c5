"""Imbalanced binary classification: sklearn/imblearn Pipeline + XGBoost, tuned over Spark."""

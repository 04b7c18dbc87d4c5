"""Constructs of the workspace stack (databricks provider): one module per concern."""

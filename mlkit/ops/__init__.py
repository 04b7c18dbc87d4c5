"""Day-2 operations: Terraform per stack, deploy, drift, inventory, release locks, promotion.

Everything here talks to the outside world (terraform, Azure, Databricks, MLflow) through
small functions that take their clients/paths as arguments, so the tests drive the real
code against real local engines and stand-in servers.
"""

"""Constructs of the `<env>-serving` stack: the scoring service on AKS (Kubernetes provider)."""

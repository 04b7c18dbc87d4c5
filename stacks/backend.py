"""Terraform state backend of a stack, from the environment's ``backend`` section."""

from __future__ import annotations

from cdktn import AzurermBackend, LocalBackend, TerraformStack

from envconfig.environment import EnvironmentConfig


def attach_backend(stack: TerraformStack, cfg: EnvironmentConfig, stack_kind: str) -> None:
    """One state blob per stack; Entra ID auth to the state account (no access keys)."""
    backend = cfg.backend
    names = cfg.names
    if backend is None:
        raise ValueError(f"environment {cfg.name!r} has no backend section")
    if backend.type == "local":
        path = f"{backend.path}/{names.env}-{stack_kind}.tfstate" if backend.path else None
        LocalBackend(stack, path=path)
        return
    AzurermBackend(
        stack,
        resource_group_name=backend.resource_group_name,
        storage_account_name=backend.storage_account_name,
        container_name=backend.container_name,
        key=names.state_key(stack_kind, backend.key),
        subscription_id=cfg.subscription_id,
        tenant_id=cfg.tenant_id,
        use_azuread_auth=True,
        use_oidc=True,
    )

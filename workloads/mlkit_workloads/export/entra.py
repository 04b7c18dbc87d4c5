"""The job identity's Entra ID token for Azure Database for PostgreSQL (Entra auth only there).

On Databricks the job reaches its identity through a Unity Catalog service credential (an access
connector's managed identity): ``dbutils.credentials.getServiceCredentialsProvider(name)`` gives an
azure-identity credential. It exists only inside a job run on a cluster: not runnable here.
"""

from __future__ import annotations

from typing import Callable

from ..errors import WorkloadError
from .connection import ENTRA_SCOPE
from .settings import ExportSettings


def token_provider(cfg: ExportSettings) -> Callable[[], str]:
    if not cfg.credential:
        raise WorkloadError("workloads.export.credential: auth entra needs the service credential's name "
                            "(the stacks set it)")

    def token() -> str:
        from databricks.sdk.runtime import dbutils  # provided by the Databricks runtime

        credential = dbutils.credentials.getServiceCredentialsProvider(cfg.credential)
        return credential.get_token(ENTRA_SCOPE).token

    return token

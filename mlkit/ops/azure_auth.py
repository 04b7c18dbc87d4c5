"""Azure credentials and state-backend reachability, checked before Terraform runs.

Only service principals, managed identities and OIDC federated credentials are expected
(DefaultAzureCredential's environment / workload identity / managed identity / Azure CLI
chain); we never read or store a secret ourselves.
"""

from __future__ import annotations

import logging
import socket

from envconfig.errors import UserError

ARM_SCOPE = "https://management.azure.com/.default"


def check_credentials(credential=None) -> None:
    """Get one ARM token; on failure say what DefaultAzureCredential tried."""
    from azure.core.exceptions import ClientAuthenticationError

    logging.getLogger("azure.identity").setLevel(logging.CRITICAL)  # we report it ourselves, once
    try:
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
        credential.get_token(ARM_SCOPE)
    except ClientAuthenticationError as e:
        raise UserError(
            "no Azure credentials: sign in with a service principal / OIDC federated credential "
            "(in CI: azure/login with id-token: write; locally: `az login`). What was tried:\n"
            + str(e.message if hasattr(e, "message") else e), exit_code=1) from None


def connect_error(host: str, port: int, timeout: float = 5.0) -> OSError | None:
    """Why a TCP connection to host:port fails, or None when it opens."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as e:
        return e


def check_reachable(host: str, port: int = 443, timeout: float = 5.0, what: str = "state backend") -> None:
    e = connect_error(host, port, timeout)
    if e is not None:
        raise UserError(f"{what} unreachable: cannot connect to {host}:{port} ({e.strerror or e}). "
                        "Check the network/firewall and the backend settings in the environment file.",
                        exit_code=1) from None


def blob_host(storage_account: str) -> str:
    return f"{storage_account}.blob.core.windows.net"

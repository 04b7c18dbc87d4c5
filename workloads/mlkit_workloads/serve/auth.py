"""Bearer-token auth: API keys kept in Key Vault, read with the pod's managed identity.

Keys are held only as SHA-256 digests and compared in constant time. The secret holds one key
per line; it is re-read every ``refresh_seconds`` so a rotation needs no restart. If the vault
cannot be read, the last good keys stay in force; with none ever read, every request is 401 and
``/readyz`` says why (fail closed).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from typing import Callable

log = logging.getLogger("mlkit.serve.auth")


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse_keys(secret_value: str) -> list[str]:
    """One key per line; blank lines and '#' comments ignored; keys shorter than 16 chars refused."""
    keys = [k.strip() for k in secret_value.splitlines() if k.strip() and not k.strip().startswith("#")]
    short = [i for i, k in enumerate(keys) if len(k) < 16]
    if short:
        raise ValueError(f"API key(s) on line(s) {', '.join(str(i + 1) for i in short)} are shorter than 16 characters")
    return keys


class ApiKeys:
    """Checks bearer tokens against the current key set. ``fetch`` returns the secret's text."""

    def __init__(self, fetch: Callable[[], str], refresh_seconds: float = 300, describe: str = "API keys"):
        self._fetch, self.refresh_seconds, self.describe = fetch, refresh_seconds, describe
        self._digests: list[bytes] = []
        self._loaded_at = 0.0
        self._lock = threading.Lock()
        self.error: str | None = None

    def refresh(self) -> bool:
        try:
            keys = parse_keys(self._fetch())
            if not keys:
                raise ValueError("the secret holds no keys")
        except Exception as e:  # keep the last good set; report, don't crash the service
            self.error = f"cannot read {self.describe}: {type(e).__name__}: {str(e)[:200]}"
            log.warning(self.error)
            with self._lock:
                self._loaded_at = time.monotonic()  # retry after the refresh interval, not on every request
            return False
        with self._lock:
            self._digests = [digest(k) for k in keys]
            self._loaded_at = time.monotonic()
        self.error = None
        return True

    @property
    def ready(self) -> bool:
        return bool(self._digests)

    def check(self, token: str | None) -> bool:
        if time.monotonic() - self._loaded_at > self.refresh_seconds:
            self.refresh()
        if not token:
            return False
        d = digest(token)
        with self._lock:
            digests = list(self._digests)
        # Compare against every key (no early exit) so timing does not tell which matched.
        ok = False
        for k in digests:
            ok |= hmac.compare_digest(d, k)
        return ok


def key_vault_fetch(vault_url: str, secret_name: str, credential=None) -> Callable[[], str]:
    """A fetch function reading one Key Vault secret with DefaultAzureCredential (workload identity)."""
    from azure.keyvault.secrets import SecretClient

    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
    client = SecretClient(vault_url=vault_url, credential=credential)
    return lambda: client.get_secret(secret_name).value or ""

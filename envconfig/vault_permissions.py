"""The Key Vault permission vocabulary: every permission an access policy can grant, per object kind.

The environment schema accepts only these in ``key_vault.grants``; the azure-baseline rule pack
flags a grant of all of them (or of ``purge``). Azure's lowercase spelling, as azurerm takes it.
"""

from __future__ import annotations

SECRET_PERMS = ("get", "list", "set", "delete", "recover", "backup", "restore", "purge")
KEY_PERMS = ("get", "list", "create", "update", "import", "delete", "recover", "backup", "restore",
             "decrypt", "encrypt", "unwrapkey", "wrapkey", "verify", "sign", "purge")
CERT_PERMS = ("get", "list", "create", "update", "import", "delete", "recover", "backup", "restore",
              "managecontacts", "manageissuers", "getissuers", "listissuers", "setissuers", "deleteissuers",
              "purge")

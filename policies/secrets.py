"""Find plaintext secrets in a rendered Terraform config. Reports what and where, never the value.

Two kinds of evidence: the shape of a value (a Databricks PAT, a JWT, a storage key, a
connection string with a key, a PEM private key, an Entra client secret, ...) anywhere in
any string, and a literal value in an attribute whose name says it holds a secret
(``password``, ``client_secret``, ``string_value``...). base64 file contents are decoded
and scanned too. References (``${...}``, CDK tokens) are never secrets.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Iterator

from .values import is_ref

SHAPES: list[tuple[str, re.Pattern[str]]] = [
    ("a private key (PEM)", re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")),
    ("a Databricks personal access token", re.compile(r"\bdapi[0-9a-f]{32}(?:-\d+)?\b")),
    ("a JSON Web Token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("a connection string with an account key", re.compile(r"AccountKey=[^;\s]{16,}", re.I)),
    ("a connection string with a shared access key", re.compile(r"SharedAccessKey=[^;\s]{16,}", re.I)),
    ("a connection string with a password", re.compile(r"(?:^|;)\s*(?:Password|Pwd)=[^;\s${]{4,}", re.I)),
    ("a SAS token signature", re.compile(r"[?&]sig=[A-Za-z0-9%+/=]{20,}")),
    ("an Azure storage account key", re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{86}==(?![A-Za-z0-9+/=])")),
    ("an Entra ID client secret", re.compile(r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.-]{3}\dQ~[A-Za-z0-9_~.-]{31,34}")),
    ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a credential in a URL", re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@${}]+:[^/\s@${}]{4,}@", re.I)),
    ("a secret-looking assignment",
     re.compile(r"(?:^|[\s\"'-])(?:password|passwd|pwd|secret|client_secret|token|api[_-]?key|access[_-]?key)"
                r"\s*[=:]\s*(?!\$\{)[^\s\"',;]{6,}", re.I)),
]

# Attributes that hold secret material by name: any literal value in them is a finding.
SECRET_NAMES = re.compile(
    r"(?:^|_)(?:password|secret|client_secret|token|api_key|apikey|access_key|private_key|sas_token|"
    r"connection_string|string_value|primary_key|secondary_key|shared_key|account_key|sas)$", re.I)
# ...except these, which name a secret (or a setting) rather than hold one.
NOT_SECRET_NAMES = re.compile(r"(?:_name|_id|_ids|_uri|_url|_version|_type|_enabled|_permissions|_scope)$", re.I)
BASE64_CONTENT = ("content_base64",)
# A connection string is a secret when it carries a credential; host, database and options alone
# (Data Factory's managed-identity SQL linked service: Data Source=...;Initial Catalog=...) are not.
CONNECTION_STRING = re.compile(r"(?:^|_)connection_string$", re.I)
CONNECTION_STRING_SECRET = re.compile(
    r"(?:^|;)\s*(?:password|pwd|accountkey|sharedaccesskey|sharedaccesssignature|sig)\s*=", re.I)
_MAX_DECODE = 2_000_000


def scan(config: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Yield ``(attribute path, what was found)`` for every plaintext secret in ``config``."""
    if isinstance(config, dict):
        for key, value in config.items():
            if key == "//":
                continue
            sub = f"{path}.{key}" if path else str(key)
            if isinstance(value, str) and key in BASE64_CONTENT:
                yield from _scan_base64(value, sub)
                continue
            if isinstance(value, str) and value and not is_ref(value) and CONNECTION_STRING.search(str(key)):
                if CONNECTION_STRING_SECRET.search(re.sub(r"\$\{[^}]*\}", "", value)):
                    yield sub, "a credential (password or key) in a connection string"
                continue
            if isinstance(value, str) and value and not is_ref(value) and _secret_name(str(key)):
                yield sub, "a literal value in a secret attribute"
                continue
            yield from scan(value, sub)
    elif isinstance(config, list):
        for i, value in enumerate(config):
            yield from scan(value, f"{path}[{i}]")
    elif isinstance(config, str):
        what = shape(config)
        if what:
            yield path, what


def shape(text: str) -> str | None:
    """What kind of secret ``text`` contains, if any (interpolations are removed first)."""
    text = re.sub(r"\$\{[^}]*\}", "", text)
    for what, pattern in SHAPES:
        if pattern.search(text):
            return what
    return None


def _secret_name(key: str) -> bool:
    return bool(SECRET_NAMES.search(key)) and not NOT_SECRET_NAMES.search(key)


def _scan_base64(value: str, path: str) -> Iterator[tuple[str, str]]:
    if is_ref(value) or len(value) > _MAX_DECODE:
        return
    try:
        text = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return  # binary or not base64: nothing readable to scan
    for line_no, line in enumerate(text.splitlines(), 1):
        what = shape(line) or _json_secret_line(line)
        if what:
            yield f"{path} (decoded, line {line_no})", what


def _json_secret_line(line: str) -> str | None:
    """``"password": "hunter2"`` inside a decoded JSON/YAML file."""
    m = re.match(r"\s*\"?([A-Za-z0-9_]+)\"?\s*:\s*\"([^\"]+)\"", line)
    if m and _secret_name(m.group(1)) and not is_ref(m.group(2)):
        return "a literal value in a secret field"
    return None

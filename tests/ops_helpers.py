"""Helpers shared by the ops tests (not a conftest: that file belongs to the shared fixtures)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import ssl
import subprocess
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
TF_TEMPLATE = FIXTURES / "terraform" / "synth"  # a cdktf.out tree (that name is git-ignored)
ENVIRONMENTS = FIXTURES / "ops" / "environments"
WHEELPKG = FIXTURES / "ops" / "wheelpkg"
SERVING = FIXTURES / "ops" / "serving" / "cdk.tf.json"


def make_cdktf_out(dest: Path, env: str) -> Path:
    """Copy the fixture synth output for ``env`` (names substituted) into ``dest``."""
    for src in TF_TEMPLATE.rglob("*"):
        if src.is_file():
            rel = str(src.relative_to(TF_TEMPLATE)).replace("__ENV__", env)
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(src.read_text().replace("__ENV__", env))
    return dest


def edit_stack(cdktf_out: Path, stack: str, change) -> None:
    path = cdktf_out / "stacks" / stack / "cdk.tf.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc, indent=2))


def git_repo(path: Path) -> str:
    """A one-commit git repository; returns its HEAD sha."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "README").write_text("fixture\n")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin", "HOME": str(path)}
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "fixture"]):
        subprocess.run(["git", *cmd], cwd=path, check=True, env=env)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True,
                          check=True).stdout.strip()


def copy_envs(dest: Path) -> Path:
    shutil.copytree(ENVIRONMENTS, dest)
    return dest


def add_serving_stack(cdktf_out: Path, env: str, image: str) -> Path:
    """Add ``<env>-serving`` (depends on the platform, outputs ``scoring_image`` = ``.../<image>``)."""
    name = f"{env}-serving"
    target = cdktf_out / "stacks" / name / "cdk.tf.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(SERVING.read_text().replace("__ENV__", env).replace("__IMAGE__", image))
    manifest = json.loads((cdktf_out / "manifest.json").read_text())
    manifest["stacks"][name] = {
        "annotations": [], "constructPath": name, "dependencies": [f"{env}-platform"], "name": name,
        "stackMetadataPath": f"stacks/{name}/metadata.json", "synthesizedStackPath": f"stacks/{name}/cdk.tf.json",
        "workingDirectory": f"stacks/{name}"}
    (cdktf_out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return cdktf_out


# ------------------------------------------------------------------ stand-in HTTPS servers


class Token:
    """An Entra ID credential as azure-identity shapes it (get_token -> AccessToken)."""

    def __init__(self):
        self.scopes = []

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken

        self.scopes += scopes
        return AccessToken("test-token", int(time.time()) + 3600)


def serve(handler_cls, tls_dir: Path | None = None):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
    if tls_dir is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls_dir / "cert.pem", tls_dir / "key.pem")
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def self_signed(dest: Path) -> Path:
    """A certificate for 127.0.0.1: the Azure SDK refuses bearer tokens over plain http."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (dest / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    return dest


def environments_with_idling_pools(dest: Path) -> Path:
    """The shipped environments copied to ``dest``, with a staging whose instance pool idles for
    500 minutes: MLK-DB-001 fails there, every other environment stays as shipped."""
    shutil.copytree(Path(__file__).resolve().parents[1] / "environments", dest)
    staging = dest / "staging.yaml"
    text = staging.read_text()
    anchor = "databricks:\n  public_network_access: false\n"
    assert anchor in text
    staging.write_text(text.replace(anchor, anchor + "  instance_pools:\n    default:\n      node_type: Standard_D4ds_v5\n"
                                    "      max_capacity: 6\n      idle_minutes: 500\n"))
    return dest


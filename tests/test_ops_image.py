"""The scoring image: build context packing (.dockerignore), the ACR Tasks build through the real
management SDK client against a stand-in ARM + blob server on 127.0.0.1 (TLS), and the deploy step
around the serving stack with real terraform on fixture stacks."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from ops_helpers import ENVIRONMENTS, WHEELPKG, Token, add_serving_stack, make_cdktf_out, self_signed, serve

from envconfig.errors import UserError
from envconfig.loader import load_environment
from mlkit.ops import acr_build, artifacts, build_context
from mlkit.ops.deploy import GateOutcome, Steps, deploy
from mlkit.ops.terraform import Terraform, find_terraform

REPO = Path(__file__).resolve().parent.parent
SUB = "00000000-0000-0000-0000-000000000000"
CI = load_environment("ci", ENVIRONMENTS)
RG, REGISTRY = CI.names.resource_group, CI.names.container_registry
ARM = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerRegistry/registries/{REGISTRY}"
DIGEST = "sha256:" + "ab" * 32
SAS = "sv=2019-02-02&sr=b&sig=SECRETSIGNATURE"
IMAGE = CI.names.scoring_image_ref("0.0.1")  # the fixture wheel's version


def members(blob: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


# ------------------------------------------------------------------ build context


def test_repository_context_is_what_the_dockerfile_copies_and_nothing_else():
    buf = io.BytesIO()
    names = build_context.pack(REPO, "workloads/Dockerfile", buf)
    files = members(buf.getvalue())
    assert sorted(files) == names
    # The Dockerfile travels although .dockerignore's '*' excludes it: the builder must read it.
    assert files["workloads/Dockerfile"] == (REPO / "workloads/Dockerfile").read_bytes()
    assert {"workloads/pyproject.toml", "requirements/kit.txt", "workloads/mlkit_workloads/__init__.py"} <= set(files)
    outside = [n for n in files if not n.startswith("workloads/mlkit_workloads/")]
    assert sorted(outside) == ["requirements/kit.txt", "workloads/Dockerfile", "workloads/pyproject.toml"]
    assert not [n for n in files if "__pycache__" in n or n.endswith(".pyc")]
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue()), mode="r:gz") as tar:
        assert {(m.uid, m.uname) for m in tar.getmembers()} == {(0, "")}  # nothing about the deploying user


def test_dockerignore_rules_follow_docker(tmp_path):
    ctx = tmp_path / "ctx"
    for rel in ("Dockerfile", "app/main.py", "app/test_main.py", "app/keep/test_x.py", "app/build/out.bin",
                "docs/a.md", "docs/keep.md", "secret.env", "deep/er/cache/x", "notes[1].txt", "#hash"):
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_text(rel)
    (ctx / ".dockerignore").write_text("\n".join([
        "# comment", "", "/secret.env", "**/test_*.py", "!app/keep/test_x.py", "app/build", "docs",
        "!docs/keep.md", "**/cache", "notes\\[1\\].txt", "Dockerfile", ".dockerignore"]) + "\n")
    assert build_context.context_files(ctx, "Dockerfile") == [
        "#hash", "Dockerfile", "app/keep/test_x.py", "app/main.py", "docs/keep.md"]
    with pytest.raises(UserError, match="ctx/Dockerfile.missing: Dockerfile not found"):
        build_context.context_files(ctx, "Dockerfile.missing")
    (ctx / ".dockerignore").write_text("ok\n[broken\n")
    with pytest.raises(UserError, match=r"\.dockerignore:2: unterminated character class"):
        build_context.context_files(ctx, "Dockerfile")


# ------------------------------------------------------------------ ACR stand-in


class AcrStandIn(BaseHTTPRequestHandler):
    """ARM (2019-06-01-preview): listBuildSourceUploadUrl, scheduleRun, runs/{id}, listLogSasUrl;
    plus the blob the context is PUT to and the run log behind its SAS link."""

    outcome = "Succeeded"
    requests: list = []
    uploads: dict = {}
    polls = 0

    def log_message(self, *args):
        pass

    def reply(self, code, body, content_type="application/json"):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self):
        url = urlparse(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        self.requests.append({"method": self.command, "path": url.path, "query": parse_qs(url.query),
                              "headers": dict(self.headers), "body": body})
        return url, body

    def base(self):
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    def run(self, status, **extra):
        return {"id": f"{ARM}/runs/cb1", "name": "cb1", "type": "Microsoft.ContainerRegistry/registries/runs",
                "properties": {"runId": "cb1", "status": status, "runType": "QuickRun", "provisioningState": "Succeeded",
                               "createTime": "2025-11-21T10:00:00+00:00", "isArchiveEnabled": False,
                               "platform": {"os": "linux", "architecture": "amd64"}, **extra}}

    def _arm(self, url, body):
        if self.headers.get("Authorization") != "Bearer test-token":
            return self.reply(401, {"error": {"code": "AuthenticationFailed", "message": "no token"}})
        if url.path.lower() == f"{ARM}/listBuildSourceUploadUrl".lower() and self.command == "POST":
            return self.reply(200, {"uploadUrl": f"{self.base()}/upload/source/0f3c.tar.gz?{SAS}",
                                    "relativePath": "source/202511211000/0f3c.tar.gz"})
        if url.path.lower() == f"{ARM}/scheduleRun".lower() and self.command == "POST":
            return self.reply(200, self.run("Queued"))
        if url.path.lower() == f"{ARM}/runs/cb1".lower() and self.command == "GET":
            type(self).polls += 1
            if self.polls < 2:
                return self.reply(200, self.run("Running"))
            if self.outcome == "Succeeded":
                return self.reply(200, self.run("Succeeded", outputImages=[
                    {"registry": f"{REGISTRY}.azurecr.io", "repository": "mlkit-scoring", "tag": "0.0.1",
                     "digest": DIGEST}]))
            return self.reply(200, self.run("Failed", runErrorMessage="failed during run, err: exit status 1"))
        if url.path.lower() == f"{ARM}/runs/cb1/listLogSasUrl".lower() and self.command == "POST":
            return self.reply(200, {"logLink": f"{self.base()}/logs/cb1/rawtext.log?{SAS}"})
        return self.reply(404, {"error": {"code": "ResourceNotFound", "message": url.path}})

    def do_POST(self):
        url, body = self._record()
        self._arm(url, body)

    def do_GET(self):
        url, body = self._record()
        if url.path == "/logs/cb1/rawtext.log":
            return self.reply(200, "Step 1/9 : FROM python:3.11-slim-bookworm\n"
                                   "ERROR: No matching distribution found for fastapi\n", "text/plain")
        self._arm(url, body)

    def do_PUT(self):
        url, body = self._record()
        if self.headers.get("x-ms-blob-type") != "BlockBlob" or "sig" not in parse_qs(url.query):
            return self.reply(400, {"error": "MissingRequiredHeader"})
        self.uploads[url.path] = body
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def acr(tmp_path):
    tls = self_signed(tmp_path / "tls")
    AcrStandIn.requests, AcrStandIn.uploads, AcrStandIn.polls, AcrStandIn.outcome = [], {}, 0, "Succeeded"
    server = serve(AcrStandIn, tls)
    base, cert = f"https://127.0.0.1:{server.server_address[1]}", str(tls / "cert.pem")
    client = acr_build.registry_client(Token(), SUB, base_url=base, connection_verify=cert, polling_interval=0)

    def build(image=IMAGE, registry=REGISTRY):
        return acr_build.build(client, RG, registry, REPO, "workloads/Dockerfile", image, verify=cert,
                               poll_seconds=0.01)
    yield build
    server.shutdown()
    server.server_close()


def arm_calls():
    return [(r["method"], r["path"].rsplit("/", 1)[-1]) for r in AcrStandIn.requests if r["path"].startswith("/subscriptions/")]


def test_build_uploads_the_context_schedules_the_run_and_returns_the_digest(acr):
    built = acr()
    assert built == acr_build.BuiltImage(IMAGE, f"{REGISTRY}.azurecr.io", DIGEST, "cb1")
    assert built.reference == f"{REGISTRY}.azurecr.io/mlkit-scoring:0.0.1@{DIGEST}"
    assert arm_calls() == [("POST", "listBuildSourceUploadUrl"), ("POST", "scheduleRun"), ("GET", "cb1"), ("GET", "cb1")]
    arm = [r for r in AcrStandIn.requests if r["path"].startswith("/subscriptions/")]
    assert all(r["query"]["api-version"] == ["2019-06-01-preview"] for r in arm)
    # The upload: the repository's filtered context, as tar.gz, and no bearer token sent to storage.
    put, = [r for r in AcrStandIn.requests if r["method"] == "PUT"]
    assert "Authorization" not in put["headers"] and put["headers"]["x-ms-blob-type"] == "BlockBlob"
    files = members(AcrStandIn.uploads["/upload/source/0f3c.tar.gz"])
    assert "workloads/Dockerfile" in files and "requirements/kit.txt" in files
    assert not [n for n in files if n.startswith(("tests/", "stacks/", ".git", ".venv")) or n == "README.md"]
    assert gzip.decompress(put["body"])  # really gzip
    run = json.loads(next(r["body"] for r in arm if r["path"].endswith("/scheduleRun")))
    assert run == {"type": "DockerBuildRequest", "imageNames": ["mlkit-scoring:0.0.1"], "isPushEnabled": True,
                   "dockerFilePath": "workloads/Dockerfile", "sourceLocation": "source/202511211000/0f3c.tar.gz",
                   "platform": {"os": "Linux"}, "timeout": 3600, "isArchiveEnabled": False, "noCache": False}


def test_failed_run_reports_the_log_tail_without_the_sas(acr):
    AcrStandIn.outcome = "Failed"
    with pytest.raises(acr_build.BuildFailed) as e:
        acr()
    msg = str(e.value)
    assert e.value.run_id == "cb1" and e.value.exit_code == 1
    assert f"ACR run cb1 building {IMAGE} in registry '{REGISTRY}'" in msg and "ended Failed" in msg
    assert "exit status 1" in msg and "No matching distribution found for fastapi" in msg
    assert "SECRET" not in msg
    assert arm_calls()[-1] == ("POST", "listLogSasUrl")
    log_get, = [r for r in AcrStandIn.requests if r["path"] == "/logs/cb1/rawtext.log"]
    assert "Authorization" not in log_get["headers"]


def test_unknown_registry_and_unreachable_arm_are_named(acr):
    with pytest.raises(acr_build.BuildFailed, match=f"build of {IMAGE} in registry 'crnothere' .*could not start"):
        acr(registry="crnothere")
    assert AcrStandIn.uploads == {}  # nothing uploaded, no run scheduled
    unreachable = acr_build.registry_client(Token(), SUB, base_url="https://127.0.0.1:1", retry_total=0)
    with pytest.raises(acr_build.BuildFailed, match="could not start: .*127.0.0.1"):
        acr_build.build(unreachable, RG, REGISTRY, REPO, "workloads/Dockerfile", IMAGE)


# ------------------------------------------------------------------ the deploy step


TERRAFORM = shutil.which("terraform")  # resolved before tests narrow PATH
tf_only = pytest.mark.skipif(TERRAFORM is None, reason="terraform binary not on PATH")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> artifacts.Wheel:
    return artifacts.build_wheel(WHEELPKG, tmp_path_factory.mktemp("dist"), epoch=1700000000)


@pytest.fixture
def kubelogin(tmp_path, monkeypatch):
    """A kubelogin on PATH (the fixture stacks use no Kubernetes provider, so it is never run)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "kubelogin").write_text("#!/bin/sh\necho 'kubelogin must not run in these tests' >&2\nexit 1\n")
    (bindir / "kubelogin").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")  # terraform is called by its full path
    return bindir


def steps_for(wheel, image_step):
    def copy_wheel(out: Path) -> artifacts.Wheel:
        out.mkdir(parents=True, exist_ok=True)
        return artifacts.Wheel(Path(shutil.copy(wheel.path, out)), wheel.sha256)
    return Steps(synth=lambda cfg, d: pytest.fail("synth must not run"), gate=lambda cfg, d: GateOutcome("passed"),
                 wheel=copy_wheel, credentials=lambda cfg: None,
                 image=lambda cfg, image: image_step(image=image))


RUNS = "mlkit-scoring@${var.scoring_image_digest}"  # what the synthesized serving stack runs


def run(tmp_path, steps, plan_only=False, image=RUNS):
    cdktf = add_serving_stack(make_cdktf_out(tmp_path / "cdktf.out", "ci"), "ci", image)
    tf = Terraform(find_terraform(TERRAFORM))
    report = deploy(CI, environments=ENVIRONMENTS, out=tmp_path / "out", repo=tmp_path, steps=steps, tf=tf,
                    plan_only=plan_only, cdktf_out=cdktf)
    return report, cdktf


@tf_only
def test_deploy_builds_the_image_before_the_serving_stack_and_records_the_digest(tmp_path, acr, wheel, kubelogin):
    order = []

    def image_step(image):
        order.append(("image", sorted(p.parent.name for p in (tmp_path / "cdktf.out").glob("stacks/*/terraform.tfstate"))))
        return acr(image=image)
    report, cdktf = run(tmp_path, steps_for(wheel, image_step))
    assert [(s.name, s.status) for s in report.stacks] == [
        ("ci-platform", "applied"), ("ci-serving", "applied"), ("ci-workspace", "applied")]
    assert order == [("image", ["ci-platform"])]  # after the registry's stack, before serving
    assert report.image.status == "built" and report.ok
    record = json.loads((tmp_path / "out/release.json").read_text())
    assert record["scoring_image"] == f"{REGISTRY}.azurecr.io/mlkit-scoring:0.0.1@{DIGEST}"
    state = json.loads((cdktf / "stacks/ci-serving/terraform.tfstate").read_text())
    deployed, = [r for r in state["resources"] if r["type"] == "terraform_data"]
    assert deployed["instances"][0]["attributes"]["input"]["value"]["image"] == \
        f"crci.azurecr.io/mlkit-scoring@{DIGEST}"  # the digest the build recorded, passed to the plan
    summary = json.loads((tmp_path / "out/deploy.json").read_text())["scoring_image"]
    assert summary == {"image": IMAGE, "status": "built", "detail": "", "registry": f"{REGISTRY}.azurecr.io",
                       "digest": DIGEST, "run_id": "cb1"}
    assert f"pushed as `{REGISTRY}.azurecr.io/mlkit-scoring:0.0.1@{DIGEST}`" in (tmp_path / "out/summary.md").read_text()


@tf_only
def test_failed_build_stops_before_the_serving_stack(tmp_path, acr, wheel, kubelogin):
    AcrStandIn.outcome = "Failed"
    report, cdktf = run(tmp_path, steps_for(wheel, acr))
    assert [(s.name, s.status) for s in report.stacks] == [
        ("ci-platform", "applied"), ("ci-serving", "not attempted"), ("ci-workspace", "not attempted")]
    assert not report.ok and report.image.status == "failed"
    assert not (cdktf / "stacks/ci-serving/terraform.tfstate").exists()
    assert not (tmp_path / "out/release.json").exists()
    md = (tmp_path / "out/summary.md").read_text()
    assert f"scoring image: `{IMAGE}` **failed**" in md and "## scoring image: build failed" in md
    assert "No matching distribution found for fastapi" in md and "applied: ci-platform" in md
    assert "## ci-serving: not attempted" in md and "SECRET" not in md


@tf_only
def test_plan_only_skips_the_build_and_says_so(tmp_path, acr, wheel, kubelogin):
    report, _ = run(tmp_path, steps_for(wheel, acr), plan_only=True)
    assert AcrStandIn.requests == []
    assert report.image.status == "skipped" and report.ok
    assert [s.name for s in report.stacks if s.status != "blocked"] == ["ci-platform"]
    md = (tmp_path / "out/summary.md").read_text()
    assert f"scoring image: `{IMAGE}` **skipped** (--plan-only: not built;" in md


@tf_only
def test_missing_kubelogin_stops_before_any_terraform(tmp_path, acr, wheel, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    if shutil.which("kubelogin"):
        pytest.skip("kubelogin is installed system-wide here")
    with pytest.raises(UserError, match=r"kubelogin not found on PATH: stack 'ci-serving' .*`az aks install-cli`"):
        run(tmp_path, steps_for(wheel, acr))
    assert not list(tmp_path.rglob("terraform.tfstate")) and AcrStandIn.requests == []


@tf_only
def test_stale_synth_of_the_serving_stack_is_refused(tmp_path, acr, wheel, kubelogin):
    with pytest.raises(UserError, match=r"runs 'crci.azurecr.io/mlkit-scoring:9.9.9', not <registry>/mlkit-scoring"
                                        r"@\$\{var.scoring_image_digest\} .*re-synth"):
        run(tmp_path, steps_for(wheel, acr), image="mlkit-scoring:9.9.9")
    assert not list(tmp_path.rglob("terraform.tfstate"))

"""Build and push the scoring image in the environment's ACR with ACR Tasks (no Docker engine).

The same four calls ``az acr build`` makes, through the management SDK with an Entra ID
credential: ``listBuildSourceUploadUrl`` -> PUT the context tar.gz to that short-lived SAS URL
-> ``scheduleRun`` with a ``DockerBuildRequest`` (push enabled) -> poll the run; on failure the
log comes from ``listLogSasUrl``. Runs live in API version 2019-06-01-preview, which
azure-mgmt-containerregistry 14.x still ships (15.x moved them to a separate beta package).

The upload and log URLs carry SAS signatures: they are never logged or put into an error.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from envconfig.errors import UserError

from . import build_context

RUNS_API = "2019-06-01-preview"
TERMINAL = {"Succeeded", "Failed", "Canceled", "Error", "Timeout"}
# Put Blob in one request is limited to 256 MiB on the oldest service versions a SAS may pin.
MAX_UPLOAD = 256 * 2**20
LOG_LINES = 40


@dataclass(frozen=True)
class BuiltImage:
    image: str      # repository:tag
    registry: str   # login server the run pushed to
    digest: str     # sha256:... of the pushed manifest
    run_id: str

    @property
    def reference(self) -> str:
        return f"{self.registry}/{self.image}@{self.digest}"


class BuildFailed(UserError):
    def __init__(self, message: str, run_id: str | None = None):
        self.run_id = run_id
        super().__init__(message, exit_code=1)


def registry_client(credential, subscription_id: str, **kwargs):
    """The management client at the API version that has runs (``base_url``/``connection_verify`` pass through)."""
    from azure.mgmt.containerregistry.v2019_06_01_preview import ContainerRegistryManagementClient

    return ContainerRegistryManagementClient(credential, subscription_id, **kwargs)


def _where(url: str) -> str:
    """Host and path of a SAS URL, without the signature."""
    u = urlsplit(url)
    return f"{u.scheme}://{u.netloc}{u.path}"


def _first_line(e: Exception) -> str:
    text = str(getattr(e, "message", None) or e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def upload(url: str, archive: Path, verify: bool | str = True) -> None:
    import requests

    size = archive.stat().st_size
    if size > MAX_UPLOAD:
        raise BuildFailed(f"build context is {size >> 20} MiB, over the {MAX_UPLOAD >> 20} MiB a single upload "
                          "allows: tighten .dockerignore")
    with open(archive, "rb") as f:
        try:
            # Plain HTTPS with the SAS in the URL: no bearer token may travel to blob storage.
            r = requests.put(url, data=f, headers={"x-ms-blob-type": "BlockBlob", "Content-Length": str(size),
                                                   "Content-Type": "application/gzip"}, verify=verify, timeout=300)
        except requests.RequestException as e:
            raise BuildFailed(f"uploading the build context to {_where(url)} failed: {type(e).__name__}") from None
    if r.status_code != 201:
        raise BuildFailed(f"uploading the build context to {_where(url)} failed: HTTP {r.status_code} "
                          f"{r.text[:300]}")


def run_log(client, resource_group: str, registry: str, run_id: str, verify: bool | str = True) -> str:
    """Last lines of a run's log, or why they could not be read (never raises)."""
    import requests
    from azure.core.exceptions import HttpResponseError

    try:
        link = client.runs.get_log_sas_url(resource_group, registry, run_id).log_link
        r = requests.get(link, verify=verify, timeout=60)
        r.raise_for_status()
    except (HttpResponseError, requests.RequestException) as e:
        return f"(the run log could not be read: {type(e).__name__})"
    return "\n".join(r.text.rstrip().splitlines()[-LOG_LINES:])


def build(client, resource_group: str, registry: str, context: Path, dockerfile: str, image: str, *,
          verify: bool | str = True, poll_seconds: float = 5.0, timeout_seconds: int = 3600,
          progress=lambda _: None) -> BuiltImage:
    """Build ``dockerfile`` (relative to ``context``) in ACR, push it as ``image`` (repository:tag)."""
    from azure.core.exceptions import AzureError
    from azure.mgmt.containerregistry.v2019_06_01_preview.models import DockerBuildRequest, PlatformProperties

    where = f"registry {registry!r} (resource group {resource_group!r})"
    try:
        source = client.registries.get_build_source_upload_url(resource_group, registry)
        with tempfile.TemporaryDirectory(prefix="mlkit-context-") as tmp:
            archive = Path(tmp) / "context.tar.gz"
            with open(archive, "wb") as f:
                members = build_context.pack(context, dockerfile, f)
            progress(f"uploading build context ({len(members)} files)")
            upload(source.upload_url, archive, verify)
        request = DockerBuildRequest(
            source_location=source.relative_path, docker_file_path=Path(dockerfile).as_posix(),
            image_names=[image], is_push_enabled=True, platform=PlatformProperties(os="Linux"),
            timeout=timeout_seconds)
        run = client.registries.begin_schedule_run(resource_group, registry, request).result()
    except AzureError as e:  # HTTP errors, unreachable ARM, no credentials
        raise BuildFailed(f"ACR build of {image} in {where} could not start: {_first_line(e)}") from None
    progress(f"ACR run {run.run_id}: {run.status}")
    deadline = time.monotonic() + timeout_seconds + 300
    while run.status not in TERMINAL:
        if time.monotonic() > deadline:
            raise BuildFailed(f"ACR run {run.run_id} building {image} in {where} did not finish within "
                              f"{timeout_seconds} s; see `az acr task logs --registry {registry} --run-id "
                              f"{run.run_id}`", run.run_id)
        time.sleep(poll_seconds)
        try:
            run = client.runs.get(resource_group, registry, run.run_id)
        except AzureError as e:
            raise BuildFailed(f"polling ACR run {run.run_id} in {where} failed: {_first_line(e)}", run.run_id) from None
    if run.status != "Succeeded":
        detail = f" ({run.run_error_message})" if run.run_error_message else ""
        raise BuildFailed(f"ACR run {run.run_id} building {image} in {where} ended {run.status}{detail}. "
                          f"Log tail:\n{run_log(client, resource_group, registry, run.run_id, verify)}", run.run_id)
    repo, _, tag = image.rpartition(":")
    pushed = [i for i in run.output_images or () if i.repository == repo and i.tag == tag and i.digest]
    if not pushed:
        raise BuildFailed(f"ACR run {run.run_id} succeeded but reports no pushed {image}: nothing to deploy",
                          run.run_id)
    return BuiltImage(image, pushed[0].registry or "", pushed[0].digest, run.run_id)

"""A stand-in for the Unity Catalog model registry REST routes MLflow's ``databricks-uc`` client calls.

Bound to 127.0.0.1. Requests are parsed into, and responses built from, MLflow's own protobuf
messages (``databricks_uc_registry_messages_pb2``, ``files_pb2``), so the client gets exactly the
shapes it parses on Databricks. The routes and methods are the ones the client's service
descriptor names (``extract_api_info_for_service(UcModelRegistryService, ...)``).

Artifacts: ``storage_mode`` decides what ``generate-temporary-credentials`` answers.
``CUSTOMER_HOSTED`` answers an Azure user-delegation SAS for the version's ``abfss://`` storage
location (what a catalog with managed storage in our ADLS account gives): the client then needs
azure-storage-file-datalake (``mlflow[databricks]``, not installed here) and would upload to
``https://<account>.dfs.core.windows.net``, which this machine cannot reach; that is where the
stand-in stops. Search results carry no tags or aliases, as UC's ``ModelVersionSearch`` says. ``DEFAULT_STORAGE`` makes the client use presigned URLs from the workspace's
Files API (``/api/2.0/fs/create-upload-url`` / ``create-download-url``), which this server hands out
for itself, so register, finalize, alias and copy run through end to end.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from google.protobuf.json_format import MessageToDict, ParseDict
from mlflow.protos import databricks_uc_registry_messages_pb2 as uc
from mlflow.protos import databricks_filesystem_service_pb2 as fs

PREFIX = "/api/2.0/mlflow/unity-catalog"


class UcRegistry:
    def __init__(self, storage_mode: str = "DEFAULT_STORAGE", storage_root: str = ""):
        self.storage_mode = storage_mode
        self.storage_root = storage_root
        self.models: dict[str, dict] = {}          # name -> {"aliases": {alias: version}}
        self.versions: dict[tuple[str, str], dict] = {}
        self.blobs: dict[str, bytes] = {}
        self.calls: list[tuple[str, str, dict]] = []
        self.counter = itertools.count(1)
        self.lock = threading.Lock()


def _model_version(reg: UcRegistry, name: str, version: str) -> uc.ModelVersion:
    v = reg.versions[(name, version)]
    aliases = [a for a, ver in reg.models[name]["aliases"].items() if ver == version]
    return uc.ModelVersion(name=name, version=version, source=v["source"], run_id=v["run_id"],
                           status=v["status"], storage_location=v["storage_location"], model_id=v["model_id"],
                           creation_timestamp=v["created"], last_updated_timestamp=v["created"],
                           aliases=[uc.RegisteredModelAlias(alias=a, version=version) for a in aliases],
                           tags=[uc.ModelVersionTag(key=k, value=val) for k, val in v["tags"].items()])


def _logged_model_id(source: str) -> str:
    parts = source.rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 and parts[-1] == "artifacts" and parts[-2].startswith("m-") else ""


class Handler(BaseHTTPRequestHandler):
    registry: UcRegistry
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, code: int, payload: dict | bytes = b"") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code: int, error_code: str, message: str) -> None:
        self._send(code, {"error_code": error_code, "message": message})

    def _request(self) -> dict:
        url = urlsplit(self.path)
        if self.command == "GET":
            return {k: v[0] for k, v in parse_qs(url.query).items()}
        raw = self._body()
        return json.loads(raw) if raw else {}

    def do_PUT(self):  # presigned upload
        path = urlsplit(self.path).path
        if not path.startswith("/blob/"):
            return self._error(404, "NOT_FOUND", path)
        self.registry.blobs[path[len("/blob"):]] = self._body()
        self._send(200, {})

    def do_GET(self):
        path = urlsplit(self.path).path
        if path.startswith("/blob/"):
            data = self.registry.blobs.get(path[len("/blob"):])
            return self._send(200, data) if data is not None else self._error(404, "NOT_FOUND", path)
        if path.startswith("/api/2.0/fs/directories/"):
            return self._list(path[len("/api/2.0/fs/directories"):])
        self._route()

    do_POST = do_PATCH = do_DELETE = lambda self: self._route()  # noqa: E731

    def _list(self, directory: str) -> None:
        directory = directory.rstrip("/") + "/"
        entries = {}
        for p, data in self.registry.blobs.items():
            if p.startswith(directory):
                head, _, rest = p[len(directory):].partition("/")
                entries[head] = {"path": directory + head, "is_directory": bool(rest),
                                 **({} if rest else {"file_size": len(data)})}
        self._send(200, {"contents": list(entries.values())})

    def _route(self) -> None:
        reg, path, req = self.registry, urlsplit(self.path).path, self._request()
        reg.calls.append((self.command, path, req))
        host = f"http://{self.headers['Host']}"
        with reg.lock:
            if path == "/api/2.0/fs/create-upload-url":
                return self._send(200, MessageToDict(fs.CreateUploadUrlResponse(url=f"{host}/blob{req['path']}")))
            if path == "/api/2.0/fs/create-download-url":
                return self._send(200, MessageToDict(fs.CreateDownloadUrlResponse(url=f"{host}/blob{req['path']}")))
            route = path[len(PREFIX):] if path.startswith(PREFIX) else None
            key = (self.command, route)
            if key == ("GET", "/registered-models:is-databricks-sdk-models-artifact-repository-enabled"):
                return self._send(200, {"is_databricks_sdk_models_artifact_repository_enabled": False})
            if key == ("POST", "/registered-models/create"):
                ParseDict(req, uc.CreateRegisteredModelRequest())
                if req["name"] in reg.models:
                    return self._error(400, "RESOURCE_ALREADY_EXISTS", f"{req['name']} exists")
                reg.models[req["name"]] = {"aliases": {}}
                return self._send(200, {"registered_model": {"name": req["name"]}})
            name = req.get("name") or req.get("full_name")
            if route and name is not None and name not in reg.models and route != "/model-versions/search":
                return self._error(404, "RESOURCE_DOES_NOT_EXIST", f"Registered model {name} does not exist")
            if key == ("GET", "/registered-models/get"):
                return self._send(200, {"registered_model": {"name": name}})
            if key == ("POST", "/model-versions/create"):
                msg = ParseDict(req, uc.CreateModelVersionRequest(), ignore_unknown_fields=False)
                version = str(1 + sum(1 for n, _ in reg.versions if n == name))
                location = (f"{reg.storage_root}/models/{name}/{version}" if reg.storage_mode == "CUSTOMER_HOSTED"
                            else f"/Models/{name.replace('.', '/')}/{version}")
                reg.versions[(name, version)] = {
                    "source": msg.source, "run_id": msg.run_id, "status": "PENDING_REGISTRATION",
                    "storage_location": location, "created": int(time.time() * 1000),
                    "tags": {t.key: t.value for t in msg.tags},
                    # MLflow 3.17's client sends no model_id when log_model registers; the version is
                    # linked to its LoggedModel by the source path (models/m-<id>/artifacts).
                    "model_id": msg.model_id or _logged_model_id(msg.source)}
                return self._send(200, {"model_version": MessageToDict(_model_version(reg, name, version),
                                                                       preserving_proto_field_name=True)})
            if key == ("POST", "/model-versions/generate-temporary-credentials"):
                msg = ParseDict(req, uc.GenerateTemporaryModelVersionCredentialsRequest())
                creds = uc.TemporaryCredentials(storage_mode=uc.StorageMode.Value(reg.storage_mode))
                if reg.storage_mode == "CUSTOMER_HOSTED":
                    creds.azure_user_delegation_sas.sas_token = "sv=2024-01-01&sig=stand-in"
                reg.calls[-1] = (self.command, path, {**req, "operation": uc.ModelVersionOperation.Name(msg.operation)})
                return self._send(200, {"credentials": MessageToDict(creds, preserving_proto_field_name=True)})
            version = str(req.get("version", ""))
            if key == ("POST", "/model-versions/finalize"):
                reg.versions[(name, version)]["status"] = "READY"
                return self._send(200, {"model_version": MessageToDict(_model_version(reg, name, version),
                                                                       preserving_proto_field_name=True)})
            if key == ("GET", "/model-versions/get"):
                if (name, version) not in reg.versions:
                    return self._error(404, "RESOURCE_DOES_NOT_EXIST", f"{name} v{version}")
                return self._send(200, {"model_version": MessageToDict(_model_version(reg, name, version),
                                                                       preserving_proto_field_name=True)})
            if key == ("GET", "/model-versions/get-download-uri"):
                return self._send(200, {"artifact_uri": reg.versions[(name, version)]["storage_location"]})
            if key == ("POST", "/registered-models/alias"):
                if (name, version) not in reg.versions:
                    return self._error(404, "RESOURCE_DOES_NOT_EXIST", f"{name} v{version}")
                reg.models[name]["aliases"][req["alias"]] = version
                return self._send(200, {})
            if key == ("GET", "/registered-models/alias"):
                v = reg.models[name]["aliases"].get(req["alias"])
                if v is None:
                    return self._error(404, "RESOURCE_DOES_NOT_EXIST", f"{name} has no alias {req['alias']}")
                return self._send(200, {"model_version": MessageToDict(_model_version(reg, name, v),
                                                                       preserving_proto_field_name=True)})
            if key == ("POST", "/model-versions/set-tag"):
                reg.versions[(name, version)]["tags"][req["key"]] = req["value"]
                return self._send(200, {})
            if key == ("GET", "/model-versions/search"):
                wanted = req.get("filter", "").partition("=")[2].strip().strip("'\"")
                found = [_model_version(reg, n, v) for (n, v) in reg.versions if n == wanted]
                return self._send(200, {"model_versions": [MessageToDict(m, preserving_proto_field_name=True)
                                                           for m in found]})
        self._error(404, "ENDPOINT_NOT_FOUND", f"{self.command} {path} is not served by the stand-in")


def serve(registry: UcRegistry) -> ThreadingHTTPServer:
    handler = type("H", (Handler,), {"registry": registry})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server

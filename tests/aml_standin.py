"""A stand-in for an Azure ML workspace's MLflow model registry REST routes (127.0.0.1, plain http).

Azure ML serves MLflow's REST API below the workspace's path (``/mlflow/v1.0/subscriptions/<id>/
resourceGroups/<rg>/providers/Microsoft.MachineLearningServices/workspaces/<name>/api/2.0/mlflow/...``);
this answers the registry routes promotion calls there, with bodies built from MLflow's own protobuf
messages (``model_registry_pb2``), and refuses requests outside the workspace's path or without a
bearer token, which is how the real endpoint treats them.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from google.protobuf.json_format import MessageToDict
from mlflow.protos import model_registry_pb2 as mr

WORKSPACE_PATH = ("/mlflow/v1.0/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-mlk-appb-weu/"
                  "providers/Microsoft.MachineLearningServices/workspaces/mlw-mlk-appb-weu")


class AmlRegistry:
    def __init__(self, path: str = WORKSPACE_PATH):
        self.path = path
        self.models: dict[str, dict] = {}
        self.versions: dict[tuple[str, str], dict] = {}
        self.tokens: list[str] = []
        self.lock = threading.Lock()

    def version_message(self, name: str, version: str) -> dict:
        v = self.versions[(name, version)]
        msg = mr.ModelVersion(name=name, version=version, source=v["source"], description=v["description"],
                              status=mr.READY, creation_timestamp=v["created"], last_updated_timestamp=v["created"],
                              tags=[mr.ModelVersionTag(key=k, value=val) for k, val in v["tags"].items()])
        return MessageToDict(msg, preserving_proto_field_name=True)


def _handler(reg: AmlRegistry):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> None:
            url = urlsplit(self.path)
            if not url.path.startswith(reg.path + "/api/2.0/mlflow/"):
                return self._send(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"no route {url.path}"})
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer "):
                return self._send(401, {"error_code": "UNAUTHENTICATED", "message": "bearer token required"})
            with reg.lock:
                reg.tokens.append(auth.removeprefix("Bearer "))
            route = url.path.removeprefix(reg.path + "/api/2.0/mlflow/")
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if method == "POST" else {}
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            with reg.lock:
                return self._answer(method, route, body, query)

        def _answer(self, method: str, route: str, body: dict, query: dict) -> None:
            if (method, route) == ("POST", "registered-models/create"):
                name = body["name"]
                if name in reg.models:
                    return self._send(400, {"error_code": "RESOURCE_ALREADY_EXISTS",
                                            "message": f"Registered Model (name={name}) already exists."})
                reg.models[name] = {"tags": {t["key"]: t["value"] for t in body.get("tags", [])}}
                return self._send(200, {"registered_model": {"name": name}})
            if (method, route) == ("POST", "model-versions/create"):
                name = body["name"]
                if name not in reg.models:
                    return self._send(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"no model {name}"})
                version = str(1 + sum(1 for n, _ in reg.versions if n == name))
                reg.versions[(name, version)] = {"source": body["source"], "description": body.get("description", ""),
                                                 "tags": {t["key"]: t["value"] for t in body.get("tags", [])},
                                                 "created": int(time.time() * 1000)}
                return self._send(200, {"model_version": reg.version_message(name, version)})
            if (method, route) == ("GET", "model-versions/get"):
                key = (query.get("name", ""), query.get("version", ""))
                if key not in reg.versions:
                    return self._send(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"no version {key}"})
                return self._send(200, {"model_version": reg.version_message(*key)})
            if (method, route) == ("GET", "model-versions/search"):
                m = re.fullmatch(r"name\s*=\s*'([^']*)'", query.get("filter", ""))
                names = [m.group(1)] if m else sorted({n for n, _ in reg.versions})
                found = [reg.version_message(n, v) for (n, v) in sorted(reg.versions) if n in names]
                return self._send(200, {"model_versions": found})
            return self._send(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"{method} {route}"})

        def do_GET(self):
            self._route("GET")

        def do_POST(self):
            self._route("POST")

    return Handler


class AmlStandIn:
    """``with AmlStandIn() as aml:`` -> ``aml.uri`` (the workspace's MLflow URI over http), ``aml.registry``."""

    def __init__(self, path: str = WORKSPACE_PATH):
        self.registry = AmlRegistry(path)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.registry))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.registry.path}"

    def __enter__(self) -> "AmlStandIn":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

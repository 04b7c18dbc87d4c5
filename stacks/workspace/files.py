"""Workspace files the jobs read: the resolved workload settings and the workloads wheel."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from cdktn import Fn
from cdktn_provider_databricks.workspace_file import WorkspaceFile
from constructs import Construct


@dataclass(frozen=True)
class SettingsFileProps:
    path: str
    settings: dict[str, Any]


class SettingsFile(Construct):
    """The settings every task gets through ``--settings /Workspace<path>``."""

    def __init__(self, scope: Construct, id_: str, props: SettingsFileProps):
        super().__init__(scope, id_)
        self.props = props
        content = json.dumps(props.settings, indent=2, sort_keys=True).encode()
        self.file = WorkspaceFile(self, "file", path=props.path,
                                  content_base64=base64.b64encode(content).decode())


@dataclass(frozen=True)
class WheelFileProps:
    path: str
    # Relative to the stack's directory under cdktf.out/, where Terraform runs; never absolute,
    # so the synthesized configuration is the same on every machine.
    source: str


class WheelFile(Construct):
    def __init__(self, scope: Construct, id_: str, props: WheelFileProps):
        super().__init__(scope, id_)
        if props.source.startswith("/"):
            raise ValueError(f"wheel source {props.source!r} must be relative to the stack directory")
        self.props = props
        # md5 of the file at plan time: a rebuilt wheel with the same version is uploaded again.
        self.file = WorkspaceFile(self, "file", path=props.path, source=props.source,
                                  md5=Fn.filemd5(props.source))

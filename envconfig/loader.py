"""Environment files -> one validated :class:`~envconfig.environment.EnvironmentConfig`.

Files may inherit with ``extends: <name>`` (deep merge: mappings merge key by key, lists and
scalars are replaced). Strings may reference ``${VAR}`` or ``${VAR:-default}``, resolved from the
process environment at load time. Every problem becomes a :class:`ConfigProblem` naming the file,
the dotted field and (where YAML tells us) the line; nothing raises a traceback at the user.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .environment import EnvironmentConfig
from .errors import ConfigError, ConfigProblem, FieldProblem
from .naming import NamingError
from .serving import model_name_problems

DEFAULT_DIR = Path("environments")


class _Origin:
    """Where each dotted field came from: (file, line). Filled while reading and merging."""

    def __init__(self) -> None:
        self.at: dict[str, tuple[str, int]] = {}

    def find(self, dotted: str) -> tuple[str, int] | None:
        # The closest ancestor that we know of: a missing field points at its parent mapping.
        while True:
            if dotted in self.at:
                return self.at[dotted]
            if "." not in dotted:
                return self.at.get("")
            dotted = dotted.rsplit(".", 1)[0]


def _construct(node: yaml.Node, file: str, path: str, origin: _Origin) -> Any:
    origin.at[path] = (file, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for k, v in node.value:
            key = str(k.value)
            if key in out:
                raise ConfigError([ConfigProblem(file, f"{path}.{key}".lstrip("."), "duplicate key", k.start_mark.line + 1)])
            out[key] = _construct(v, file, f"{path}.{key}".lstrip("."), origin)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, file, f"{path}.{i}".lstrip("."), origin) for i, v in enumerate(node.value)]
    # Scalars: let PyYAML's resolver type them (int, float, bool, null, str).
    return yaml.SafeLoader(yaml.dump(None)).construct_object(node, deep=True)


def _read_yaml(path: Path, origin: _Origin) -> dict[str, Any]:
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([ConfigProblem(file, "", f"cannot read: {e.strerror}")]) from None
    except UnicodeDecodeError as e:
        line = e.object[:e.start].count(b"\n") + 1
        raise ConfigError([ConfigProblem(file, "", f"not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset "
                                                   f"{e.start}): save the file as UTF-8", line)]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise ConfigError([ConfigProblem(file, "", f"not valid YAML: {getattr(e, 'problem', e)}",
                                         line + 1 if line is not None else None)]) from None
    if node is None:
        return {}
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError([ConfigProblem(file, "", "the top level must be a mapping of fields", 1)])
    return _construct(node, file, "", origin)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _resolve_vars(value: Any, path: str, origin: _Origin, problems: list[ConfigProblem], env: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_vars(v, f"{path}.{k}".lstrip("."), origin, problems, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_vars(v, f"{path}.{i}".lstrip("."), origin, problems, env) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            file, line = origin.find(path) or ("?", None)
            problems.append(ConfigProblem(file, path, f"${{{name}}} is not set in the environment "
                                                      f"(export {name}=... or use ${{{name}:-default}})", line))
            return m.group(0)

        return _VAR.sub(sub, value)
    return value


def environment_names(directory: Path = DEFAULT_DIR) -> list[str]:
    """Concrete environments in a directory: every *.yaml that is not abstract (base files are)."""
    if not directory.is_dir():
        raise ConfigError([ConfigProblem(str(directory), "", "environments directory does not exist")])
    names = []
    for p in sorted(directory.glob("*.yaml")):
        try:
            head = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError):  # loading it reports the problem with its line
            head = {}
        if not (isinstance(head, dict) and head.get("abstract") is True):
            names.append(p.stem)
    return names


def _raw_chain(name: str, directory: Path, origin: _Origin, seen: list[str]) -> dict[str, Any]:
    path = directory / f"{name}.yaml"
    if name in seen:
        chain = " -> ".join([*seen, name])
        raise ConfigError([ConfigProblem(str(directory / f"{seen[-1]}.yaml"), "extends", f"extends cycle: {chain}")])
    if not path.is_file():
        if seen:
            raise ConfigError([ConfigProblem(str(directory / f"{seen[-1]}.yaml"), "extends",
                                             f"extends {name!r}, but {path} does not exist")])
        known = ", ".join(environment_names(directory)) if directory.is_dir() else "none"
        raise ConfigError([ConfigProblem(str(path), "", f"no environment {name!r} (known: {known})")])
    data = _read_yaml(path, origin)
    data.pop("abstract", None)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError([ConfigProblem(str(path), "extends", "must be the name of another environment file")])
    parent_origin = _Origin()
    base = _raw_chain(parent, directory, parent_origin, [*seen, name])
    # Fields set here win; fields only the parent sets keep the parent's file and line.
    for k, v in parent_origin.at.items():
        origin.at.setdefault(k, v)
    return _merge(base, data)


def load_environment(name: str, directory: Path | str = DEFAULT_DIR, env: dict[str, str] | None = None) -> EnvironmentConfig:
    """Read, merge, resolve and validate one environment. Raises ConfigError with every problem found."""
    directory = Path(directory)
    origin = _Origin()
    raw = _raw_chain(name, directory, origin, [])
    file = str(directory / f"{name}.yaml")
    problems: list[ConfigProblem] = []
    raw = _resolve_vars(raw, "", origin, problems, dict(os.environ) if env is None else env)
    if problems:
        raise ConfigError(problems)
    if "name" in raw and raw["name"] != name:
        line = origin.find("name")
        raise ConfigError([ConfigProblem(file, "name", f"is {raw['name']!r} but the file is {name}.yaml",
                                         line[1] if line else None)])
    raw["name"] = name
    try:
        cfg = EnvironmentConfig.model_validate(raw)
    except ValidationError as e:
        for err in e.errors():
            dotted = ".".join(str(p) for p in err["loc"])
            cause = (err.get("ctx") or {}).get("error")
            if isinstance(cause, FieldProblem):  # a cross-field check: report it at its field
                dotted = ".".join(x for x in (dotted, cause.field) if x)
            src = origin.find(dotted)
            f, line = src if src else (file, None)
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field (check the spelling; see environments/schema.json)"
            elif err["type"] == "missing":
                msg = "required field is missing"
            problems.append(ConfigProblem(f, dotted, msg, line))
        raise ConfigError(problems) from None
    for dotted, message in model_name_problems(cfg.workloads, cfg.is_cloud):
        src = origin.find(dotted)
        problems.append(ConfigProblem(src[0] if src else file, dotted, message, src[1] if src else None))
    if problems:
        raise ConfigError(problems)
    try:
        cfg.names.validate()
    except NamingError as e:
        src = origin.find(e.field)
        raise ConfigError([ConfigProblem(src[0] if src else file, e.field, str(e), src[1] if src else None)]) from None
    return cfg


def load_all(directory: Path | str = DEFAULT_DIR, env: dict[str, str] | None = None) -> dict[str, EnvironmentConfig]:
    """Every concrete environment; collects the problems of all files before raising."""
    directory = Path(directory)
    out: dict[str, EnvironmentConfig] = {}
    problems: list[ConfigProblem] = []
    for name in environment_names(directory):
        try:
            out[name] = load_environment(name, directory, env)
        except ConfigError as e:
            problems.extend(e.problems)
    if problems:
        raise ConfigError(problems)
    return out


def json_schema() -> dict[str, Any]:
    schema = EnvironmentConfig.model_json_schema()
    schema["properties"]["extends"] = {"type": "string", "description": "name of the environment file to inherit"}
    schema["properties"]["abstract"] = {"type": "boolean", "description": "a base file: not an environment"}
    schema.setdefault("required", [])
    schema["required"] = [r for r in schema["required"] if r != "name"]
    return schema

"""What a rule is, what it looks at and what it reports.

A rule is data (id, severity, title, why, fix, which environments) plus a check. The check
gets one synthesized Terraform element (a resource, data source, provider, output or other
block, as the construct renders it) and yields one message per violation. Values that are
CDK tokens (references to other resources, variables) are "set by reference": the helpers in
:mod:`policies.values` treat them as present and unknown, never as a violation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal

if TYPE_CHECKING:
    from envconfig.environment import EnvironmentConfig
    from envconfig.naming import Names

Severity = Literal["error", "warning"]
Applies = Literal["all", "prod_like"]


@dataclass(frozen=True)
class Element:
    """One block of a stack's Terraform configuration, seen from the construct that renders it."""

    kind: str  # resource | data | provider | output | other
    type: str  # terraform type (azurerm_storage_account), provider name, or block kind
    name: str  # logical id (friendly unique id) inside the stack
    path: str  # construct path, e.g. prod-platform/storage/account
    stack: str
    config: dict[str, Any]
    taggable: bool = False  # the resource type has a ``tags`` argument

    @property
    def address(self) -> str:
        if self.kind == "resource":
            return f"{self.type}.{self.name}"
        if self.kind == "data":
            return f"data.{self.type}.{self.name}"
        if self.kind in ("provider", "output", "variable", "locals"):
            return f"{self.kind}.{self.name}"
        return self.name


@dataclass(frozen=True)
class Context:
    """What a check may know besides the element: the environment it is synthesized for."""

    cfg: "EnvironmentConfig"

    @property
    def names(self) -> "Names":
        return self.cfg.names


Check = Callable[[Element, Context], Iterable[str]]


@dataclass(frozen=True)
class Rule:
    id: str
    pack: str
    severity: Severity
    title: str
    why: str
    fix: str
    check: Check = field(repr=False)
    types: tuple[str, ...] = ()  # terraform types this rule inspects; () with kinds=... for any
    kinds: tuple[str, ...] = ("resource",)
    applies: Applies = "all"
    checkov: tuple[str, ...] = ()  # checkov checks that test the same thing (suppressed together)

    def applies_to(self, el: Element, cfg: "EnvironmentConfig") -> bool:
        if self.applies == "prod_like" and not cfg.prod_like:
            return False
        if el.kind not in self.kinds:
            return False
        return not self.types or el.type in self.types

    @property
    def environments(self) -> str:
        return "prod-like only" if self.applies == "prod_like" else "all"


@dataclass
class Finding:
    """One violation: of one of our rules (source mlkit) or of a checkov check (source checkov)."""

    rule_id: str
    severity: Severity
    title: str
    message: str
    env: str
    stack: str
    path: str  # construct path ('' when unknown)
    address: str  # Terraform address, e.g. azurerm_storage_account.storage_account_E377CD4D
    source: str = "mlkit"
    file: str = ""  # synthesized file (filled in after synth)
    line: int | None = None
    help: str = ""
    suppressed_by: Any = None  # the ActiveSuppression that waives it, if any

    @property
    def suppressed(self) -> bool:
        return self.suppressed_by is not None

    @property
    def blocking(self) -> bool:
        return self.severity == "error" and not self.suppressed

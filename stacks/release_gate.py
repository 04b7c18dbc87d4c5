"""The release lock, enforced by Terraform itself, so no CLI can deploy around it.

``mlkit deploy`` compares a prod-like environment's release lock with what it would deploy, but
``cdktn deploy prod-platform`` (or ``terraform apply`` in the stack directory) never runs that code.
So synth writes the comparison into every stack of a prod-like environment: a provider-free
``terraform_data`` whose lifecycle preconditions fail ``terraform plan`` (before anything is
applied) when

- the lock is missing or unreadable, pins other models than this environment registers, or was
  written for another git commit than the one synthesized (found at synth time by
  ``mlkit.ops.release.expectation_for``, listed in a local);
- the workloads wheel next to the synth output has another sha256 than the lock pins
  (``filesha256`` at plan time: the file Terraform would upload is the file checked);
- the serving stack's image digest is not the one the lock pins.

``python main.py`` still synthesizes every environment: a prod stack without a lock is written,
and refuses at plan with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktn import Precondition, TerraformLocal, TerraformResource, TerraformResourceLifecycle
from constructs import Construct


@dataclass(frozen=True)
class ReleaseExpectation:
    env: str
    lock_path: str
    problems: tuple[str, ...] = ()      # found at synth time
    wheel_sha256: str | None = None     # what the lock pins
    image_digest: str | None = None     # sha256:... the lock pins for the scoring image


def _hcl_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ReleaseGate(Construct):
    def __init__(self, scope: Construct, id_: str, expected: ReleaseExpectation, *, wheel_source: str,
                 image_variable: str | None = None):
        """``wheel_source``: the wheel's path relative to the stack directory; ``image_variable``: the
        Terraform variable holding the digest the serving stack runs the image with."""
        super().__init__(scope, id_)
        refuse = f"refusing to deploy {expected.env} (prod-like): its release lock {expected.lock_path}"
        problems = TerraformLocal(self, "release_lock_problems", list(expected.problems))
        conditions = [Precondition(
            condition=f"${{length({problems.fqn}) == 0}}",
            error_message=f"{refuse} does not match this synth: " + "; ".join(expected.problems)
            if expected.problems else f"{refuse}: no problems")]
        if expected.wheel_sha256:
            conditions.append(Precondition(
                condition=f"${{filesha256(\"${{path.module}}/{wheel_source}\") == {_hcl_string(expected.wheel_sha256)}}}",
                error_message=f"{refuse} pins workloads wheel sha256 {expected.wheel_sha256}, but "
                              f"{wheel_source} (relative to this stack) is another build: deploy the locked "
                              "release, or promote this one first (`mlkit promote`)"))
        if image_variable is not None and expected.image_digest:
            conditions.append(Precondition(
                condition=f"${{var.{image_variable} == {_hcl_string(expected.image_digest)}}}",
                error_message=f"{refuse} pins scoring image {expected.image_digest}; another digest was given"))
        # terraform_data is Terraform's built-in resource (no provider). Written as a plain resource, not
        # cdktn.DataResource, whose synth-time validation runs `terraform version` (synth needs no terraform).
        self.resource = TerraformResource(self, "release", terraform_resource_type="terraform_data",
                                          lifecycle=TerraformResourceLifecycle(precondition=conditions))
        self.resource.add_override("input", {"lock": expected.lock_path})

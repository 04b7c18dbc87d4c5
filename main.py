"""The CDK Terrain app (cdktf.json: "app": "python main.py").

Synthesizes every environment in environments/ (or $MLKIT_ENVIRONMENTS) into cdktf.out/
(or $MLKIT_SYNTH_OUT): stacks <env>-platform and <env>-workspace per cloud environment.
"""

from __future__ import annotations

import os

os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from pathlib import Path  # noqa: E402

from envconfig.errors import UserError  # noqa: E402
from envconfig.loader import DEFAULT_DIR, load_all  # noqa: E402
from mlkit.commands.synth import DEFAULT_OUT  # noqa: E402
from mlkit.console import console, user_errors  # noqa: E402
from mlkit.ops.synth import refusal_message, refuse_failing, synthesize  # noqa: E402


def main() -> None:
    environments = Path(os.environ.get("MLKIT_ENVIRONMENTS", DEFAULT_DIR))
    # The cdktn CLI tells the app where to write through CDKTF_OUTDIR.
    outdir = Path(os.environ.get("CDKTF_OUTDIR") or os.environ.get("MLKIT_SYNTH_OUT") or DEFAULT_OUT)
    # The policy gate runs as in `mlkit synth`; MLKIT_NO_POLICY=1 is the --no-policy of this entry point.
    policies = os.environ.get("MLKIT_NO_POLICY") != "1"
    with user_errors():
        result = refuse_failing(synthesize(load_all(environments), outdir, environments=environments,
                                           policies=policies))
        if result.refused:
            raise UserError(refusal_message(result), exit_code=1)
    console.print(f"synthesized {len(result.stacks)} stacks into {outdir}/: "
                  + ", ".join(f"{s.name} ({s.resources})" for s in result.stacks), markup=False, soft_wrap=True)


if __name__ == "__main__":
    main()

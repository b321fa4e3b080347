"""`python -m infra.outputs cdk-outputs.json deployed-outputs.json`: the deployed stack's outputs, flat.

`cdk deploy --outputs-file` nests outputs by stack; a frontend wants the shape of `.local/outputs.json`
(apiUrl, the stream URLs, issuer, plus userPoolId and userPoolClientId). This writes exactly that.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from infra.config import InfraConfig


def flatten(cdk_outputs: dict[str, dict[str, Any]], stack_prefix: str) -> dict[str, Any]:
    stack = f"{stack_prefix}Api"
    if stack not in cdk_outputs:
        api_stacks = [name for name in cdk_outputs if name.endswith("Api")]
        if len(api_stacks) != 1:
            raise SystemExit(f"no outputs for stack {stack} in the file (stacks: {sorted(cdk_outputs)})")
        stack = api_stacks[0]
    return {key: value for key, value in cdk_outputs[stack].items() if not key.startswith("ExportsOutput")}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    source, target = Path(argv[0]), Path(argv[1])
    flat = flatten(json.loads(source.read_text()), InfraConfig.load().stack_prefix)
    target.write_text(json.dumps(flat, indent=2) + "\n")
    print(json.dumps(flat, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

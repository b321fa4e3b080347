#!/usr/bin/env python3
"""CDK entry point: `make synth` / `make deploy` (the pinned CLI runs this through cdk.json).

Settings come from context (`npx cdk synth -c allowedOrigins=https://app.example.com`) or the
environment; see infra/config.py for every key.
"""

from __future__ import annotations

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App

from infra.app import build


def main() -> None:
    app = App()
    build(app)
    app.synth()


if __name__ == "__main__":
    main()

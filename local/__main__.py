"""`python -m local <command>`: the local stack's command line.

`token` prints one ID token and nothing else on stdout, so `TOKEN=$(python -m local token ...)`
just works; `dev` runs the whole stack.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from local.issuer import LocalIssuer


def _token(args: argparse.Namespace) -> int:
    token = LocalIssuer.load_or_create().mint(args.user_id, ttl_seconds=args.ttl)
    sys.stdout.write(token + "\n")
    return 0


def _dev(args: argparse.Namespace) -> int:
    from local import stack  # lazily: the stack pulls in moto and every function

    stack.main(args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local", description="coach-stream local tools")
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser("token", help="print an ID token signed by the local issuer")
    token.add_argument("--user-id", required=True, help="the custom:user_id claim")
    token.add_argument("--ttl", type=int, default=3600, metavar="SECONDS", help="lifetime (default 3600)")
    token.set_defaults(run=_token)
    dev = commands.add_parser("dev", help="run the local stack (as `make dev` does)")
    dev.set_defaults(run=_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())

"""`python -m local <command>`: the local stack's command line.

`token` prints one ID token and nothing else on stdout, so `TOKEN=$(python -m local token ...)`
just works; `dev` runs the whole stack; `chat` talks to a coach through the stream, in the terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from local.issuer import DEFAULT_DIRECTORY, LOCAL_ISSUER, LocalIssuer


def _token(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir)
    outputs = state_dir / "outputs.json"
    issuer = json.loads(outputs.read_text())["issuer"] if outputs.exists() else LOCAL_ISSUER
    token = LocalIssuer.load_or_create(state_dir, issuer=issuer).mint(args.user_id, ttl_seconds=args.ttl)
    sys.stdout.write(token + "\n")
    return 0


def _dev(args: argparse.Namespace) -> int:
    from local import stack  # lazily: the stack pulls in moto and every function
    from local.llama_server import RealModelUnavailable

    try:
        stack.main(args)
    except RealModelUnavailable as error:
        print(f"local dev: {error}", file=sys.stderr)
        return 3
    return 0


def _flags(args: argparse.Namespace) -> int:
    from local.appconfig_profile import flags_command  # lazily: `token` must stay quick

    return flags_command(Path(args.state_dir), args.streaming, args.percentage)


def _chat(args: argparse.Namespace) -> int:
    from local import chat  # lazily: `token` must stay quick

    return chat.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local", description="coach-stream local tools")
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser("token", help="print an ID token signed by the local issuer")
    token.add_argument("--user-id", required=True, help="the custom:user_id claim")
    token.add_argument("--ttl", type=int, default=3600, metavar="SECONDS", help="lifetime (default 3600)")
    token.add_argument("--state-dir", default=str(DEFAULT_DIRECTORY), help="the stack's state folder")
    token.set_defaults(run=_token)
    dev = commands.add_parser("dev", help="run the local stack (as `make dev` does)")
    dev.add_argument("--state-dir", default=str(DEFAULT_DIRECTORY), help="where outputs and the issuer key live")
    dev.add_argument("--ephemeral-ports", action="store_true", help="free ports instead of 3000-3003")
    dev.add_argument(
        "--concurrency", type=int, default=10, metavar="N", help="environments a function may run at once (10)"
    )
    dev.add_argument(
        "--model",
        choices=("double", "bedrock", "openai", "llama"),
        help="who answers (default: $COACH_LOCAL_MODEL, else the Bedrock double); llama: SmolLM2 via llama.cpp",
    )
    dev.set_defaults(run=_dev)
    chat = commands.add_parser("chat", help="stream a coach conversation in the terminal (local or deployed)")
    chat.add_argument("-m", "--message", help="send this one message and exit (else an interactive prompt)")
    chat.add_argument("--state-dir", default=str(DEFAULT_DIRECTORY), help="the local stack's state folder")
    chat.add_argument("--outputs", metavar="FILE", help="a stack's outputs (default: <state-dir>/outputs.json)")
    chat.add_argument("--token", help="an ID token (default: $COACH_TOKEN, else minted by the local issuer)")
    chat.add_argument("--user-id", help="default: the outputs' demo user")
    chat.add_argument("--coach-id", help="default: the outputs' demo coach")
    chat.add_argument("--conversation-id", help="default: the demo conversation, else a new one")
    chat.add_argument("--raw", action="store_true", help="print the raw SSE lines, like curl -N")
    chat.add_argument("--no-color", action="store_true", help="no ANSI styling (also: NO_COLOR, or not a TTY)")
    chat.set_defaults(run=_chat)
    flags = commands.add_parser("flags", help="show or change the streaming flags the local AppConfig serves")
    flags.add_argument("--streaming", choices=("on", "off"), help="turn streaming on or off")
    flags.add_argument("--percentage", type=int, metavar="N", help="share of users who stream, 0 to 100")
    flags.add_argument("--state-dir", default=str(DEFAULT_DIRECTORY), help="the local stack's state folder")
    flags.set_defaults(run=_flags)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())

"""A whole conversation turn through the local stack, with the Bedrock double at a fixed pace.

The double's router (the side model's `Converse` call) answers after ROUTER_S and the reply's first
token comes FIRST_TOKEN_S after its stream opens. "First chunk minus first token" is then what the
turn adds in front of the model's own first token: the router, when the reply waits for it, and our
own path.
"""

from __future__ import annotations

import atexit
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx

from functions.catalog import FUNCTIONS
from infra.bundling import BundleSpec, bundle
from infra.config import InfraConfig
from infra.runtime_python import find_python, install_hint
from local.bedrock_double import CoachResponder, Finish, RecordedRequest, Script, Text
from local.demo import DEMO_COACH, DEMO_COACH_ID, DEMO_USER_ID
from local.deployed import synthesize
from local.functions import REPO_ROOT
from local.stack import TABLE_NAME, LocalStack, StackPorts
from shared.store.dynamodb.coaches import DynamoCoachRepository
from shared.store.dynamodb.conversations import DynamoConversationRepository

CONVERSATION = "stream-coach-conversation"
CREATOR = "stream-coach-creator-session"
ROUTER_S = 1.5
FIRST_TOKEN_S = 0.3
PIECES = 20
PIECE_S = 0.02
TURNS = 15
FIRST_CHUNK_GOAL_MS = 50.0  # first chunk minus first token, p50
IMPORT_GOAL_MS = 250.0  # the conversation handler module's import, median


class PacedModel:
    def __init__(self) -> None:
        self.default = CoachResponder(speed=50)

    def __call__(self, request: RecordedRequest) -> Script:
        if any("isWorkoutLog" in text for text in request.system_texts):
            return Script.reply('{"isWorkoutLog": false, "complexity": "simple"}', delay=ROUTER_S)
        if request.streaming:
            pieces = [Text("Coach ", FIRST_TOKEN_S)] + [Text(f"word{n} ", PIECE_S) for n in range(PIECES - 1)]
            return Script((*pieces, Finish()))
        return self.default(request)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def ms(values: list[float]) -> str:
    """p50 (p95) in milliseconds."""
    return f"{statistics.median(values) * 1000:7.1f} ms (p95 {percentile(values, 0.95) * 1000:.1f})"


@contextmanager
def turn_stack(responder: Any = None, **options: Any) -> Iterator[LocalStack]:
    """The local stack on free ports with the Bedrock double answering as `responder` (the pace above
    by default); `options` are the stack's own (one environment a function unless they say more)."""
    with tempfile.TemporaryDirectory() as state:
        settings = {"concurrency": 1, "model": "double", **options}
        stack = LocalStack(StackPorts.ephemeral(), Path(state), **settings).start()
        try:
            assert stack.bedrock is not None
            stack.bedrock.responder = responder or PacedModel()
            yield stack
        finally:
            stack.stop()


@dataclass(frozen=True)
class Conversation:
    """One user's conversation with their coach, ready to be posted to."""

    path: str
    headers: dict[str, str]


def conversation_of(stack: LocalStack, user_id: str = DEMO_USER_ID) -> Conversation:
    """A new conversation of `user_id` with the demo coach (given to the user when it is not the demo user)."""
    table = stack.dynamodb.resource().Table(TABLE_NAME)
    if user_id != DEMO_USER_ID:
        DynamoCoachRepository(table).create_coach(DEMO_COACH.model_copy(update={"user_id": user_id}))
    conversation = DynamoConversationRepository(table).create_conversation(user_id, DEMO_COACH_ID, "bench")
    return Conversation(
        path=f"/users/{user_id}/coaches/{DEMO_COACH_ID}/conversations/{conversation.conversation_id}/stream",
        headers={"Authorization": f"Bearer {stack.issuer.mint(user_id)}"},
    )


@dataclass(frozen=True)
class TurnFigures:
    starts: list[float]
    first_chunks: list[float]
    wholes: list[float]

    @property
    def before_first_token(self) -> list[float]:
        """First chunk minus the model's first-token time."""
        return [first - FIRST_TOKEN_S for first in self.first_chunks]


def measure_turns(stack: LocalStack) -> TurnFigures:
    conversation = conversation_of(stack)
    url = stack.function_urls[CONVERSATION].url + conversation.path
    figures = TurnFigures([], [], [])
    with httpx.Client(timeout=30, headers=conversation.headers) as client:
        for turn in range(TURNS + 1):
            started = time.perf_counter()
            start = first = 0.0
            with client.stream("POST", url, json={"userResponse": f"bench turn {turn}"}) as response:
                for line in response.iter_lines():
                    now = time.perf_counter() - started
                    if not start and '"type":"start"' in line:
                        start = now
                    if not first and '"type":"chunk"' in line:
                        first = now
            if turn:  # the first turn warms the worker's clients
                figures.starts.append(start)
                figures.first_chunks.append(first)
                figures.wholes.append(time.perf_counter() - started)
    before = figures.before_first_token
    pace = f"router {ROUTER_S * 1000:.0f} ms, first token {FIRST_TOKEN_S * 1000:.0f} ms"
    print(f"\n(a) conversation turn through the local stack, {TURNS} warm turns (model double: {pace},")
    print(f"    then {PIECES - 1} pieces {PIECE_S * 1000:.0f} ms apart)")
    print(f"  {'time to start':30} {ms(figures.starts)}")
    print(f"  {'time to first chunk':30} {ms(figures.first_chunks)}")
    print(f"  {'first chunk - first token':30} {ms(before)}  goal <= {FIRST_CHUNK_GOAL_MS:.0f} ms p50")
    print(f"  {'whole turn':30} {ms(figures.wholes)}")
    return figures


def handler_import(catalog_name: str) -> tuple[str, dict[str, str]]:
    """A function's handler module, and the environment to import it in: its template's (the import
    validates it), resource references as placeholders."""
    deployed = synthesize(FUNCTIONS, {}).function(catalog_name)
    return deployed.handler.rpartition(".")[0], {**os.environ, **deployed.placeholder_environment()}


def run_python(
    code: str, env: dict[str, str], *options: str, python: str = sys.executable, cwd: Path = REPO_ROOT
) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter (this one's unless told), from the repository unless told, with `env`."""
    command = [python, *options, "-c", code]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=True)


LIBRARIES = "libraries"  # the key of the library floor in `measure_imports`' answer
PROJECT_PACKAGES = frozenset({"shared", "functions", "bench", "local", "infra", "tests"})


def measure_imports() -> dict[str, float]:
    """Module import of each streaming handler in a fresh interpreter, under its template's environment, and
    the floor under the conversation handler's: the libraries it loads, alone."""
    print("\n(c) import of a streaming handler module in a fresh interpreter (9 runs; `python -m bench.import_tree`")
    print("    shows where the time goes)")
    print("    `import`: the module alone; `runtime`: our runtime's module and its load of the handler, as a cold")
    print("    start runs them (the collector off, then what init made frozen: shared/runtime/bootstrap.py)")
    medians: dict[str, float] = {}
    for name in (CONVERSATION, CREATOR):
        module, env = handler_import(name)
        for way, code in (
            ("import", f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"),
            ("runtime", RUNTIME_LOAD.format(handler=f"{module}.handler")),
        ):
            times = [float(run_python(code, env).stdout) for _ in range(9)]
            median = statistics.median(times)
            if way == "import":
                medians[name] = median
            goal = f"  goal <= {IMPORT_GOAL_MS:.0f} ms" if name == CONVERSATION else ""
            label = f"{name} ({way})"
            print(f"  {label:44} median {median * 1000:6.1f} ms  max {max(times) * 1000:6.1f} ms{goal}")
    medians[LIBRARIES] = library_floor(CONVERSATION)
    asset_import(CONVERSATION)
    return medians


def library_floor(catalog_name: str) -> float:
    """The third-party modules the handler's import loads (and the standard library's they pull in), imported
    alone in a fresh interpreter in the order the handler loaded them, plus one pydantic model built (the
    handler builds 45; the first pays for pydantic's schema machinery): what no handler using these libraries
    can import faster, whatever its own code does. Returns the median."""
    module, env = handler_import(catalog_name)
    listing = f"import json, sys; import {module}; print(json.dumps(list(sys.modules)))"
    loaded = json.loads(run_python(listing, env).stdout)
    libraries = [
        name
        for name in loaded
        if name.partition(".")[0] not in PROJECT_PACKAGES | sys.stdlib_module_names and name != "__main__"
    ]
    code = LIBRARY_FLOOR.format(modules=json.dumps(libraries))
    times = [float(run_python(code, env).stdout) for _ in range(9)]
    tops = sorted({name.partition(".")[0] for name in libraries if not name.startswith("_")})
    print(f"  {'the libraries alone (floor of the above)':44} median {statistics.median(times) * 1000:6.1f} ms")
    print(f"    {len(libraries)} modules of {', '.join(tops)}")
    return statistics.median(times)


def asset_import(catalog_name: str) -> None:
    """The handler's import from its bundled asset on the runtime's Python, the task root read-only (nothing
    written beside it): with the asset's bytecode, and with it removed, as assets were bundled before; then
    the table's two clients that init makes, on the asset's botocore (its models pruned to the services
    called, `infra.bundling.prune_sdk_models`)."""
    version = InfraConfig().python_version
    python = find_python(version)
    if python is None:
        print(f"  (asset import not measured: {install_hint(version)})")
        return
    module, env = handler_import(catalog_name)
    on_asset = {"python": str(python.executable)}
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    bundled = bundled_asset(catalog_name)
    client_env = {**env, "PYTHONPATH": str(bundled), "PYTHONDONTWRITEBYTECODE": "1", **SDK_STAND_INS}
    clients = ASSET_CLIENTS.format(module=module)
    made = [float(run_python(clients, client_env, **on_asset, cwd=bundled).stdout) for _ in range(5)]
    with tempfile.TemporaryDirectory() as workdir:
        without = Path(shutil.copytree(bundled, Path(workdir) / "task", ignore=shutil.ignore_patterns("__pycache__")))
        for way, task in (("with its bytecode", bundled), ("without bytecode", without)):
            asset_env = {**env, "PYTHONPATH": str(task), "PYTHONDONTWRITEBYTECODE": "1"}
            runs = [run_python(code, asset_env, **on_asset, cwd=task) for _ in range(5)]
            times = [float(run.stdout) for run in runs]
            label = f"{catalog_name} (asset, Python {version}, {way})"
            print(f"  {label:62} median {statistics.median(times) * 1000:6.1f} ms")
    label = f"  then the table's two clients init makes (asset, Python {version})"
    print(f"{label:64} median {statistics.median(made) * 1000:6.1f} ms")


@cache
def bundled_asset(catalog_name: str) -> Path:
    """The function's asset as `cdk synth` bundles it (the runtime's Python, its wheels, its bytecode, the SDK
    pruned), for this machine's CPU: bundled once a bench run, for every figure that runs on it, and removed
    when the run ends. Read it, never change it."""
    definition = next(d for d in FUNCTIONS if d.name == catalog_name)
    workdir = Path(tempfile.mkdtemp(prefix="bench-asset-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    return bundle(BundleSpec(definition.folder, InfraConfig().python_version, platform.machine()), workdir / "task")


# A Region and credentials, as Lambda's environment has them: a client is made without calling anything.
SDK_STAND_INS = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "stand-in",
    "AWS_SECRET_ACCESS_KEY": "stand-in",
}

ASSET_CLIENTS = """import {module} as handler_module
import time
from shared.aws_clients import RATE_LIMIT
from shared.store.dynamodb.table import coach_table
t = time.perf_counter()
coach_table(handler_module.SETTINGS.table_name)
coach_table(handler_module.SETTINGS.table_name, RATE_LIMIT)
print(time.perf_counter() - t)"""


LIBRARY_FLOOR = """import importlib, time
t = time.perf_counter()
for name in {modules}:
    try:
        importlib.import_module(name)
    except ImportError:
        pass  # a name a module put in sys.modules for another (an alias), not one to import
from pydantic import BaseModel
class Built(BaseModel):
    value: int
print(time.perf_counter() - t)"""

RUNTIME_LOAD = """import time
t = time.perf_counter()
from shared.runtime.bootstrap import init_objects_kept, load_handler
with init_objects_kept():
    load_handler("{handler}")
print(time.perf_counter() - t)"""

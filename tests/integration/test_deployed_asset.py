"""The conversation function as it deploys: its asset alone, on the runtime's Python, answers a real turn.

The CDK app is synthesized for this machine's CPU with the Api stack really bundled. The conversation
function's asset directory (the one `cdk deploy` zips for its `Code.S3Key`) becomes the task root of
its local workers, started by the template's Python through the asset's own exec wrapper, behind the
local Function URL, with moto's DynamoDB and the Bedrock double. A turn must stream and be stored.

Nothing of the repository or the project's venv may reach that interpreter. The test checks it from
outside the worker, in /proc: its binary, command line, environment, working directory and mapped
libraries, and the `sys.path` its interpreter builds from them.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from functions.catalog import FUNCTIONS, STREAM_COACH_CONVERSATION
from infra.bundling import EXEC_WRAPPER, REPO_ROOT, REQUIREMENTS
from infra.config import InfraConfig
from infra.functions import TASK_ROOT
from infra.runtime_python import PythonInstall, find_python, install_hint
from local.functions import FunctionRuntime
from local.stack import TABLE_NAME, LocalStack, StackPorts
from shared.store.dynamodb.conversations import DynamoConversationRepository
from tests.fixtures.cdk_synth import BUNDLING_STACKS, Synthesized, synthesize
from tests.fixtures.deployed_runtime import (
    ELF_MACHINES,
    ProcessView,
    child_processes,
    elf_machine,
    import_view,
    lambda_environment,
    machine_architecture,
    run_isolated,
)
from tests.fixtures.stacks import running
from tests.integration.sse_client import EventCollector

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]  # the first run fills the wheelhouse

FUNCTION = STREAM_COACH_CONVERSATION
MESSAGE = "I did 5x5 squats at 100kg today, how should I progress?"
ARCHITECTURE = machine_architecture()
# The deploy settings of both synths (the asset's and the local stack's), as `cdk synth` reads them from
# the shell, so both templates are one: this CPU, and the default browser origins (no browser takes
# part; the stack would otherwise move them to its own port). The developer's shell reaches neither.
DEPLOY_ENVIRON = {
    "LAMBDA_ARCHITECTURE": ARCHITECTURE,
    "ALLOWED_ORIGINS": ",".join(InfraConfig().allowed_origins),
}


@pytest.fixture(scope="module")
def deployed_python() -> PythonInstall:
    """The interpreter of the runtime the stack deploys on; its absence fails the run, it never skips."""
    version = InfraConfig().python_version
    found = find_python(version)
    if found is None:
        pytest.fail(install_hint(version), pytrace=False)
    return found


@pytest.fixture(scope="module")
def synthesized(deployed_python: PythonInstall, tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The app as `cdk synth` builds it for this CPU, the Api stack's functions really bundled."""
    api_stack = f"{InfraConfig().stack_prefix}Api"
    return synthesize(
        tmp_path_factory.mktemp("cdk-deployed"),
        FUNCTIONS,
        environ=DEPLOY_ENVIRON,
        **{BUNDLING_STACKS: [api_stack]},
    )


@pytest.fixture(scope="module")
def asset(synthesized: Synthesized) -> Path:
    return synthesized.asset_directory(FUNCTION.name).resolve()


@pytest.fixture(scope="module")
def stack(
    asset: Path, deployed_python: PythonInstall, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """The local stack with the conversation function's workers on the asset and the deployed Python."""
    local = LocalStack(
        StackPorts.ephemeral(FUNCTIONS),
        tmp_path_factory.mktemp("asset-stack-state"),
        FUNCTIONS,
        concurrency=1,
        model="double",
        runtimes={FUNCTION.name: FunctionRuntime(asset, str(deployed_python.executable))},
        deploy_environ=DEPLOY_ENVIRON,
        overrides_file=None,
    )
    with running(local):
        yield local


@dataclass(frozen=True)
class Turn:
    status: int
    content_type: str
    events: list[dict[str, Any]]
    arrivals: list[float]  # when each event's bytes arrived (monotonic seconds)
    workers: list[ProcessView]  # every worker of the function, read right after it answered


@pytest.fixture(scope="module")
def turn(stack: LocalStack) -> Turn:
    """One conversation turn over the Function URL, as a browser sends it."""
    demo = stack.demo
    url = (
        f"{stack.function_urls[FUNCTION.name].url}/users/{demo['userId']}/coaches/{demo['coachId']}"
        f"/conversations/{demo['conversationId']}/stream"
    )
    token = stack.issuer.mint(demo["userId"])
    with httpx.stream(
        "POST",
        url,
        headers={"Authorization": f"Bearer {token}"},
        json={"userResponse": MESSAGE},
        timeout=60,
    ) as response:
        collector = EventCollector(response)
        events = collector.join(timeout=60)
        status, content_type = response.status_code, response.headers.get("content-type", "")
    # This stack's workers of the function (another stack of the session may run one by the same name).
    runtime_apis = {environment.server.address for environment in stack.functions[FUNCTION.name].environments}
    workers = [
        view for view in child_processes(os.getpid()) if view.environment.get("AWS_LAMBDA_RUNTIME_API") in runtime_apis
    ]
    return Turn(status, content_type, events, [at for at, _ in collector.events], workers)


def _top_level_names(asset: Path) -> list[str]:
    """What the asset offers to `import`: its packages and modules, wheels and project code alike."""
    names = set()
    for entry in asset.iterdir():
        name = entry.name.split(".")[0] if entry.is_file() else entry.name
        if entry.is_file() and not entry.name.endswith((".py", ".so")):
            continue
        if entry.is_dir() and not (entry / "__init__.py").is_file():
            continue
        if name.isidentifier():
            names.add(name)
    return sorted(names)


def _pinned_requirements() -> list[tuple[str, str]]:
    """(normalized name, version) of every runtime requirement, as its dist-info directory spells them."""
    pinned = []
    for line in (REPO_ROOT / REQUIREMENTS).read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            name, _, version = requirement.partition("==")
            pinned.append((re.sub(r"[-_.]+", "_", name.split("[")[0]).lower(), version.strip()))
    return pinned


def test_the_deployed_python_is_installed():
    """Reported as a failure of its own: without this interpreter nothing below can run."""
    version = InfraConfig().python_version
    assert find_python(version) is not None, install_hint(version)


def test_the_template_runs_the_asset_on_the_deployed_python_through_its_wrapper(synthesized, asset, deployed_python):
    props = synthesized.function(FUNCTION.name)["Properties"]
    assert props["Runtime"] == f"python{deployed_python.version}"
    assert props["Architectures"] == [ARCHITECTURE]
    assert props["Handler"] == FUNCTION.handler
    # The wrapper Lambda runs is the asset's own, at its place under the task root.
    assert props["Environment"]["Variables"]["AWS_LAMBDA_EXEC_WRAPPER"] == f"{TASK_ROOT}/{EXEC_WRAPPER}"
    wrapper = asset / EXEC_WRAPPER
    assert wrapper.is_file() and wrapper.stat().st_mode & stat.S_IXOTH
    module = FUNCTION.handler.rpartition(".")[0]
    assert (asset / (module.replace(".", "/") + ".py")).is_file()
    assert not asset.is_relative_to(REPO_ROOT), "the asset is the cloud assembly's copy, not the repository"


def test_the_asset_holds_its_own_wheels_for_the_deployed_python_and_cpu(asset, deployed_python):
    digits = deployed_python.version.replace(".", "")
    tag = f"cp{digits}"
    machine = {"x86_64": "x86_64", "arm64": "aarch64"}[ARCHITECTURE]
    (core,) = asset.glob("pydantic_core/_pydantic_core.*.so")
    assert core.name == f"_pydantic_core.cpython-{digits}-{machine}-linux-gnu.so"
    assert elf_machine(core) == ELF_MACHINES[ARCHITECTURE]
    (wheel,) = asset.glob("pydantic_core-*.dist-info/WHEEL")
    tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")]
    assert tags and all(t.startswith(f"{tag}-{tag}-") and t.endswith(machine) for t in tags), tags
    installed = {entry.name.lower() for entry in asset.glob("*.dist-info")}
    assert not [name for name in installed if name.startswith("aws_xray_sdk")], "no tracing SDK in the asset"
    for name, version in _pinned_requirements():
        assert f"{name}-{version}.dist-info" in installed, f"{name}=={version} is not installed in the asset"


def test_a_turn_streams_start_chunks_and_complete(turn):
    assert turn.status == 200
    assert turn.content_type.startswith("text/event-stream")
    types = [event["type"] for event in turn.events]
    assert types[0] == "start" and types[-1] == "complete", types
    assert "chunk" in types and "error" not in types, types
    chunks = "".join(event["content"] for event in turn.events if event["type"] == "chunk")
    assert chunks.strip()
    assert turn.events[-1]["fullMessage"] == chunks
    # Streamed, not buffered: the paced reply's events reach the client in several separate reads.
    assert len(set(turn.arrivals)) >= 3, turn.arrivals


def test_the_turn_is_stored(turn, stack):
    complete = turn.events[-1]
    repository = DynamoConversationRepository(stack.dynamodb.resource().Table(TABLE_NAME))
    messages = repository.list_messages(stack.demo["userId"], stack.demo["conversationId"])
    assert [(m.role, m.content) for m in messages] == [("user", MESSAGE), ("assistant", complete["fullMessage"])]
    assert messages[1].id == complete["messageId"]


def test_every_worker_is_the_deployed_python_on_the_asset_through_its_exec_wrapper(turn, asset, deployed_python):
    assert len(turn.workers) == 1, "concurrency 1: one worker, and it answered the turn"
    for worker in turn.workers:
        assert worker.executable.resolve() == deployed_python.executable
        # The wrapper's own exec line: it ran, and replaced itself with the interpreter on our loop.
        assert worker.command_line == [str(deployed_python.executable), "-u", "-m", "shared.runtime.bootstrap"]
        assert worker.cwd.resolve() == asset
        assert worker.environment["LAMBDA_TASK_ROOT"] == str(asset)
        assert worker.environment["AWS_LAMBDA_EXEC_WRAPPER"] == str(asset / EXEC_WRAPPER)
        assert worker.environment["PYTHONPATH"] == str(asset), "the asset, and nothing else, ahead of the stdlib"
        assert not {"PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE"} & set(worker.environment)


def test_the_worker_runs_with_the_asset_templates_settings(turn, synthesized, asset):
    """Every literal setting of the template whose asset runs is the worker's, /var/task being the asset."""
    variables = synthesized.function(FUNCTION.name)["Properties"]["Environment"]["Variables"]
    literals = {name: value for name, value in variables.items() if isinstance(value, str)}
    assert literals
    (worker,) = turn.workers
    expected = {name: value.replace(TASK_ROOT, str(asset), 1) for name, value in literals.items()}
    assert {name: worker.environment.get(name) for name in expected} == expected


def test_every_aws_call_of_the_asset_is_one_its_role_allows(turn, stack):
    name = stack.functions[FUNCTION.name].spec.name
    calls = [call for call in stack.recorded_calls() if call.caller == name]
    services = {call.service for call in calls}
    assert {"dynamodb", "bedrock"} <= services, services
    assert [call for call in calls if call.verdict != "allowed"] == []


def test_the_worker_loaded_its_native_code_from_the_asset_only(turn, asset, deployed_python):
    (worker,) = turn.workers
    assert next(asset.glob("pydantic_core/_pydantic_core.*.so")) in worker.mapped_files
    # The token was verified (RS256) before the turn started: cryptography's Rust core is loaded, the asset's.
    rust = [p for p in worker.mapped_files if p.name.startswith("_rust.") and p.parent.name == "bindings"]
    assert rust and all(p.is_relative_to(asset) for p in rust), rust
    system = [Path("/usr"), Path("/lib"), Path("/lib64")]  # libc, libssl, locales: the OS's, as in Lambda
    for path in worker.mapped_files:
        assert not path.is_relative_to(REPO_ROOT), f"{path} is from the repository"
        assert not path.is_relative_to(Path(sys.prefix).resolve()), f"{path} is from the project's venv"
        assert any(path.is_relative_to(root) for root in (asset, deployed_python.prefix, *system)), path


def test_the_worker_imports_from_the_asset_and_the_deployed_stdlib_only(turn, asset, deployed_python):
    (worker,) = turn.workers
    names = _top_level_names(asset)
    assert {"shared", "functions", "pydantic", "pydantic_core", "boto3", "jwt"} <= set(names), names
    view = import_view(worker, names)
    assert view.path[0] == asset
    for entry in view.path:
        assert entry.is_relative_to(asset) or entry.is_relative_to(deployed_python.prefix), entry
        assert not entry.is_relative_to(REPO_ROOT) and not entry.is_relative_to(Path(sys.prefix).resolve()), entry
    for name, places in view.found.items():
        assert places, f"{name} is not importable on the worker's path"
        assert all(place.is_relative_to(asset) for place in places), (name, places)


INIT = """import json, sys
sys.path[:0] = [{asset!r}]
from shared.runtime.bootstrap import init_objects_kept, load_handler
with init_objects_kept():
    handler = load_handler({handler!r})
    prepare = getattr(handler, "prepare_workers", None)
    if callable(prepare):
        prepare()
import botocore, pydantic_core
print(json.dumps([sys.modules[{module!r}].__file__, botocore.__file__, pydantic_core.__file__, callable(prepare)]))
"""


@pytest.mark.parametrize("definition", FUNCTIONS, ids=lambda d: d.name)
def test_every_functions_asset_inits_on_the_deployed_python(synthesized, deployed_python, definition):
    """Each function's asset as `cdk.out` holds it, not only the conversation's: on the deployed Python with
    no site-packages, its handler loads under the template's settings and the streaming ones prepare their
    first turn, clients made on the asset's pruned botocore. Init reaches no service (`prepare` logs that
    and goes on, as it would with a service down); a model botocore lacks, or a settings error, fails it."""
    asset = synthesized.asset_directory(definition.name).resolve()
    props = synthesized.function(definition.name)["Properties"]
    env = {**lambda_environment(props, asset), "PYTHONDONTWRITEBYTECODE": "1"}
    module = props["Handler"].rpartition(".")[0]
    code = INIT.format(asset=str(asset), handler=props["Handler"], module=module)
    result = run_isolated(code, env, asset, str(deployed_python.executable), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    *files, prepared = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(Path(file).resolve().is_relative_to(asset) for file in files), files
    assert prepared == definition.streaming, "the streaming functions prepare their first turn at init"
    # `prepare` logs what it could not make and goes on (its log on stdout, as the function's): a model
    # missing from the asset shows only there.
    output = result.stdout + result.stderr
    for sign in ("Unknown service", "Unable to load data", "no client for", "Traceback"):
        assert sign not in output, output[-3000:]

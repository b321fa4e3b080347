"""Asset hashing (in a throwaway tree) and one real bundle for this machine, run as Lambda would run it.

The real bundle is built exactly like a deployed asset, but with wheels for this machine's CPU and
Python so it can run here. Its handler is imported by the template's handler string with `python -S`
(no site-packages: everything must come from the bundle), then invoked on a local Runtime API twice:
buffered under the stock bootstrap, and streamed through the bundle's own exec wrapper.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import platform
import queue
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from functions.catalog import FUNCTIONS
from infra.bundling import (
    EXEC_WRAPPER,
    REPO_ROOT,
    BundleSpec,
    BundlingError,
    asset_hash,
    bundle,
    missing_sources,
)
from local.runtime_api import Invocation, Outcome, RuntimeApiServer
from shared.aws_clients import SDK_SERVICES
from tests.fixtures.deployed_runtime import lambda_environment, run_isolated
from tests.infra.cfn import function_by_name

STREAMING = [d for d in FUNCTIONS if d.streaming]


# --- the asset hash ------------------------------------------------------------------------------


def _tree(root: Path) -> Path:
    (root / "functions" / "a").mkdir(parents=True)
    (root / "functions" / "b").mkdir(parents=True)
    (root / EXEC_WRAPPER).parent.mkdir(parents=True)
    (root / "requirements.txt").write_text("pydantic==2.14.3\n")
    (root / "functions" / "__init__.py").write_text("")
    (root / "functions" / "catalog.py").write_text("FUNCTIONS = ()\n")
    (root / "functions" / "a" / "handler.py").write_text("def handler(e, c): return 'a'\n")
    (root / "functions" / "b" / "handler.py").write_text("def handler(e, c): return 'b'\n")
    (root / "shared" / "__init__.py").write_text("")
    wrapper = root / EXEC_WRAPPER
    wrapper.write_text('#!/bin/sh\nexec "$@"\n')
    wrapper.chmod(0o755)
    return root


def test_each_function_has_its_own_hash_that_moves_with_its_inputs(tmp_path):
    root = _tree(tmp_path)
    a, b = BundleSpec("a", root=root), BundleSpec("b", root=root)
    first = (asset_hash(a), asset_hash(b))
    assert first[0] != first[1], "two functions must never share an asset"

    (root / "functions" / "a" / "handler.py").write_text("def handler(e, c): return 'A'\n")
    second = (asset_hash(a), asset_hash(b))
    assert second[0] != first[0] and second[1] == first[1], "only the edited function changes"

    (root / "shared" / "sse.py").write_text("X = 1\n")
    third = (asset_hash(a), asset_hash(b))
    assert third[0] != second[0] and third[1] != second[1], "shared/ is in every function"

    (root / "requirements.txt").write_text("pydantic==2.14.4\n")
    fourth = (asset_hash(a), asset_hash(b))
    assert fourth[0] != third[0] and fourth[1] != third[1]

    (root / EXEC_WRAPPER).chmod(0o644)
    assert asset_hash(a) != fourth[0], "the wrapper's run bit is part of the asset"

    assert asset_hash(BundleSpec("a", root=root, architecture="x86_64")) != asset_hash(BundleSpec("a", root=root))
    assert asset_hash(BundleSpec("a", root=root, python_version="3.12")) != asset_hash(BundleSpec("a", root=root))

    before = asset_hash(a)
    (root / "functions" / "a" / "__pycache__").mkdir()
    (root / "functions" / "a" / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"junk")
    assert asset_hash(a) == before, "caches of the build machine are not part of the asset"


def test_template_asset_hashes_are_distinct_per_function(real):
    template = real.raw("api")
    keys = [
        function_by_name(template, f"{real.config.name_prefix}-{d.name}")[1]["Properties"]["Code"]["S3Key"]
        for d in real.definitions
    ]
    assert len(set(keys)) == len(keys)


def test_missing_folder_is_reported(tmp_path):
    root = _tree(tmp_path)
    assert missing_sources(BundleSpec("a", root=root)) == []
    assert missing_sources(BundleSpec("zzz", root=root)) == ["functions/zzz/handler.py"]


# --- one real bundle, run here -------------------------------------------------------------------


def _local_spec(folder: str) -> BundleSpec:
    return BundleSpec(
        folder=folder,
        python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
        architecture=platform.machine(),
    )


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, real):
    """Bundle a catalog function for this machine on first use; (definition, template props, task root)."""
    built: dict[str, tuple] = {}

    def get(definition):
        if definition.name in built:
            return built[definition.name]
        spec = _local_spec(definition.folder)
        missing = missing_sources(spec)
        if missing:
            pytest.skip(f"{definition.name}: {', '.join(missing)} does not exist yet")
        target = tmp_path_factory.mktemp(definition.folder) / "task"
        try:
            bundle(spec, target)
        except BundlingError as exc:
            if "could not fetch" in str(exc):
                pytest.skip(f"no wheels for this machine in the wheelhouse and no package index: {exc}")
            raise
        _, fn = function_by_name(real.raw("api"), f"{real.config.name_prefix}-{definition.name}")
        built[definition.name] = (definition, fn["Properties"], target)
        return built[definition.name]

    return get


@pytest.fixture(params=STREAMING, ids=lambda d: d.name)
def bundled(request, bundles):
    return bundles(request.param)


def test_bundle_has_the_asset_layout_and_an_executable_wrapper(bundled):
    definition, _, task = bundled
    wrapper = task / EXEC_WRAPPER
    assert wrapper.is_file()
    assert wrapper.stat().st_mode & stat.S_IXUSR and wrapper.stat().st_mode & stat.S_IXOTH
    for relative in (
        "functions/__init__.py",
        "functions/catalog.py",
        f"functions/{definition.folder}/handler.py",
    ):
        assert (task / relative).is_file(), relative
    assert (task / "pydantic").is_dir() and (task / "aws_lambda_powertools").is_dir()
    assert not list(task.glob("aws_xray_sdk*")), "no tracing SDK: Lambda's active tracing needs none"


def test_bundle_carries_botocores_models_of_the_called_services_only_and_makes_their_clients(bundled):
    """The asset's botocore knows the listed services, each of which makes its client from the bundle alone
    (the DynamoDB table too, through boto3's resource models), and no other service."""
    _, props, task = bundled
    data = task / "botocore" / "data"
    assert {p.name for p in data.iterdir() if p.is_dir()} == SDK_SERVICES
    assert {"endpoints.json", "partitions.json", "_retry.json", "sdk-default-configuration.json"} <= {
        p.name for p in data.iterdir()
    }
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(task)!r})\n"
        "import botocore.exceptions, botocore.session\n"
        "from shared.aws_clients import DYNAMODB, SDK_SERVICES, make_client, make_resource\n"
        "for name in sorted(SDK_SERVICES):\n"
        "    make_client(name, DYNAMODB.botocore_config())\n"
        "make_resource('dynamodb', DYNAMODB.botocore_config()).Table('t').name\n"
        "try:\n"
        "    botocore.session.get_session().create_client('sqs')\n"
        "except botocore.exceptions.UnknownServiceError:\n"
        "    print('sqs unknown')\n"
    )
    result = run_isolated(code, lambda_environment(props, task), task)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "sqs unknown"


def test_bundle_carries_the_runtimes_bytecode_for_every_module_unchecked_against_its_source(bundled):
    _, _, task = bundled
    sources = list(task.rglob("*.py"))
    assert len(sources) > 500
    without = [p for p in sources if not Path(importlib.util.cache_from_source(str(p))).is_file()]
    assert without == [], without[:5]
    for source in (task / "shared" / "composition" / "turns.py", task / "pydantic" / "main.py"):
        header = Path(importlib.util.cache_from_source(str(source))).read_bytes()[:8]
        assert header[:4] == importlib.util.MAGIC_NUMBER  # the spec's Python (this one, in this test)
        assert int.from_bytes(header[4:8], "little") == 0b01  # hash-based, source never checked


def test_the_bundles_bytecode_is_what_a_read_only_task_root_imports(bundled, tmp_path):
    """Lambda cannot write bytecode beside a read-only asset: what it runs is the bundle's own `.pyc`, even
    where the source's timestamp no longer matches (a zip does not keep it)."""
    definition, props, task = bundled
    copy = tmp_path / "task"
    shutil.copytree(task / "functions", copy / "functions")
    handler = copy / "functions" / definition.folder / "handler.py"
    handler.write_text(handler.read_text() + "\nraise RuntimeError('compiled from source')\n")
    code = (
        "import importlib, sys\n"
        f"sys.path[:0] = [{str(copy)!r}, {str(task)!r}]\n"
        f"importlib.import_module('functions.{definition.folder}.handler')\n"
    )
    result = run_isolated(code, {**lambda_environment(props, task), "PYTHONDONTWRITEBYTECODE": "1"}, copy)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("definition", FUNCTIONS, ids=lambda d: d.name)
def test_handler_imports_from_the_bundle_alone_by_its_template_handler_string(bundles, definition):
    _, props, task = bundles(definition)
    module, _, attribute = props["Handler"].rpartition(".")
    code = (
        "import importlib, json, sys\n"
        f"sys.path.insert(0, {str(task)!r})\n"
        f"module = importlib.import_module({module!r})\n"
        f"assert callable(getattr(module, {attribute!r}))\n"
        "import pydantic, jwt\n"
        "print(json.dumps([module.__file__, pydantic.__file__, jwt.__file__]))\n"
    )
    result = run_isolated(code, lambda_environment(props, task), task)
    assert result.returncode == 0, result.stderr
    for path in json.loads(result.stdout.strip().splitlines()[-1]):
        assert Path(path).resolve().is_relative_to(task.resolve()), path


def _invoke(command: list[str], props: dict, task: Path, event: dict) -> list[Outcome]:
    invocations: queue.Queue[Invocation] = queue.Queue()
    server = RuntimeApiServer(props["FunctionName"], invocations).start()
    env = {**lambda_environment(props, task), "AWS_LAMBDA_RUNTIME_API": server.address}
    process = subprocess.Popen(command, env=env, cwd=task, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        invocation = Invocation(event=event, timeout_seconds=30)
        invocations.put(invocation)
        finished = invocation.finished.wait(30)
        outcomes: list[Outcome] = []
        while not invocation.outcomes.empty():
            outcomes.append(invocation.outcomes.get_nowait())
        if not finished:
            process.kill()
            output = process.communicate(timeout=5)[0].decode(errors="replace")
            pytest.fail(f"no response within 30 s; function output:\n{output[-3000:]}")
        return outcomes
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()
        server.shutdown()
        server.server_close()


def _unauthenticated_event(definition) -> dict:
    sample = Path(REPO_ROOT / "events" / f"{definition.name}.json")
    event = json.loads(sample.read_text())
    event["headers"].pop("authorization", None)
    return event


def test_bundle_answers_buffered_under_the_stock_runtime(bundled):
    definition, props, task = bundled
    stock_bootstrap = REPO_ROOT / "local" / "stock_bootstrap.py"
    outcomes = _invoke([sys.executable, "-S", str(stock_bootstrap)], props, task, _unauthenticated_event(definition))
    assert [o.kind for o in outcomes] == ["buffered"], outcomes
    response = json.loads(outcomes[0].data)
    assert response["statusCode"] == 401
    body = base64.b64decode(response["body"]) if response.get("isBase64Encoded") else response["body"].encode()
    assert json.loads(body)["error"]["code"] == "UNAUTHORIZED"


def test_bundle_streams_through_its_own_exec_wrapper(bundled, tmp_path):
    definition, props, task = bundled
    # Lambda runs `exec-wrapper <python> ... /var/runtime/bootstrap.py`; our python is this one without
    # site-packages, so every import must come from the bundle.
    interpreter = tmp_path / "python-bundle-only"
    interpreter.write_text(f'#!/bin/sh\nexec {shutil.which(sys.executable) or sys.executable} -S "$@"\n')
    interpreter.chmod(0o755)
    command = [str(task / EXEC_WRAPPER), str(interpreter), "/var/runtime/bootstrap.py"]
    outcomes = _invoke(command, props, task, _unauthenticated_event(definition))
    kinds = [o.kind for o in outcomes]
    assert kinds[0] == "stream" and kinds[-1] == "end", kinds
    assert outcomes[0].headers["content-type"] == "application/vnd.awslambda.http-integration-response"
    raw = b"".join(o.data for o in outcomes if o.kind == "chunk")
    prelude, _, body = raw.partition(b"\0" * 8)
    assert json.loads(prelude)["statusCode"] == 401
    assert json.loads(body)["error"]["code"] == "UNAUTHORIZED"
    assert "Lambda-Runtime-Function-Error-Type" not in outcomes[-1].headers

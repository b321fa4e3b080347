"""The AWS services the functions call are listed once (`SDK_SERVICES`), and the list is kept honest: every
client is made through `shared.aws_clients` for a listed service, the local stack's endpoint variables are
the listed services', and the deployed asset keeps botocore's models of exactly those services (its test is
in `tests/infra/test_bundling.py`). A client for an unlisted service fails here as it would in AWS."""

from __future__ import annotations

import ast
import gzip
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import botocore.session
import pytest

from infra.bundling import BundlingError, prune_sdk_models, pruned_endpoints
from shared.aws_clients import DYNAMODB, SDK_SERVICES, UnlistedService, make_client, make_resource
from shared.settings import SDK_ENDPOINT_VARIABLES

ROOT = Path(__file__).resolve().parents[2]
CLIENT_MAKERS = {"make_client", "make_resource"}
SDK_CALLS = {"client", "resource", "Session", "get_session"}  # what makes a client or a session elsewhere


def _calls(folder: str) -> list[tuple[Path, ast.Call]]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                found.append((path, node))
    return found


def _name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


@pytest.mark.parametrize("folder", ["shared", "functions"])
def test_every_client_is_made_for_a_listed_service_by_the_one_maker(folder):
    makers = [(path, call) for path, call in _calls(folder) if _name(call) in CLIENT_MAKERS]
    named = {call.args[0].value for _, call in makers if call.args and isinstance(call.args[0], ast.Constant)}
    assert all(call.args and isinstance(call.args[0], ast.Constant) for _, call in makers), "a service by name"
    assert named <= SDK_SERVICES
    elsewhere = [
        f"{path.relative_to(ROOT)}:{call.lineno}"
        for path, call in _calls(folder)
        if _name(call) in SDK_CALLS and path.name != "aws_clients.py" and _is_sdk_call(call)
    ]
    assert elsewhere == [], "clients and sessions are made in shared/aws_clients.py only"


def _is_sdk_call(call: ast.Call) -> bool:
    """`boto3.client(...)`, `session.resource(...)`, `botocore.session.get_session()`: an SDK object made, as
    opposed to our own methods that happen to share a name (a repository's `get_session(user, id)`)."""
    func = call.func
    if not isinstance(func, ast.Attribute):
        return False
    owner = ast.unparse(func.value)
    return owner.startswith(("boto3", "botocore")) or (func.attr in {"client", "resource"} and "session" in owner)


def test_the_services_used_are_the_ones_the_shared_code_names():
    named = {
        call.args[0].value
        for _, call in _calls("shared")
        if _name(call) in CLIENT_MAKERS and call.args and isinstance(call.args[0], ast.Constant)
    }
    assert named == SDK_SERVICES, "a listed service no code calls keeps its models in every asset for nothing"


def test_a_client_for_an_unlisted_service_is_refused_before_any_is_made():
    with pytest.raises(UnlistedService, match=r"'sqs'.*SDK_SERVICES"):
        make_client("sqs", DYNAMODB.botocore_config())
    with pytest.raises(UnlistedService):
        make_resource("ec2", DYNAMODB.botocore_config())


def test_the_local_endpoint_variables_are_the_listed_services_by_botocores_own_ids():
    """botocore reads `AWS_ENDPOINT_URL_<service id>`, the id from each service's model, spaces as `_`."""
    session = botocore.session.get_session()
    ids = {session.get_service_model(name).service_id for name in SDK_SERVICES}
    assert set(SDK_ENDPOINT_VARIABLES) == {f"AWS_ENDPOINT_URL_{str(sid).upper().replace(' ', '_')}" for sid in ids}


def test_clients_made_on_many_threads_at_once_all_work(monkeypatch):
    """The process's one session makes one client at a time; threads asking together each get theirs."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    barrier = threading.Barrier(8, timeout=10)
    made: list[object] = []
    failed: list[BaseException] = []

    def make(service: str) -> None:
        barrier.wait()
        try:
            made.append(make_client(service, DYNAMODB.botocore_config()))
        except BaseException as exc:
            failed.append(exc)

    services = sorted(SDK_SERVICES) * 2
    threads = [threading.Thread(target=make, args=(s,)) for s in services[:8]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert failed == []
    assert sorted(client.meta.service_model.service_name for client in made) == sorted(services[:8])  # type: ignore[attr-defined]


TOP_FILES = ("endpoints.json", "partitions.json", "_retry.json", "sdk-default-configuration.json")


def _site(tmp_path: Path, services: list[str]) -> Path:
    """A botocore data folder in miniature: each service's model (gzipped, as botocore ships most) naming its
    endpoint prefix, and an `endpoints.json` knowing every service in two partitions."""
    data = tmp_path / "botocore" / "data"
    for name in services:
        (data / name / "2020-01-01").mkdir(parents=True)
        model = {"metadata": {"endpointPrefix": f"prefix-of-{name}"}}
        (data / name / "2020-01-01" / "service-2.json.gz").write_bytes(gzip.compress(json.dumps(model).encode()))
    partition = {"regions": {"r-1": {}}, "services": {f"prefix-of-{name}": {"endpoints": {}} for name in services}}
    endpoints = {"version": 3, "partitions": [{**partition, "partition": "aws"}, {**partition, "partition": "aws-cn"}]}
    (data / "endpoints.json").write_text(json.dumps(endpoints))
    for top in TOP_FILES[1:]:
        (data / top).write_text("{}")
    return tmp_path


def test_pruning_keeps_the_listed_services_and_botocores_own_files(tmp_path):
    target = _site(tmp_path, [*SDK_SERVICES, "ec2", "sqs"])
    assert prune_sdk_models(target) == ["ec2", "sqs"]
    data = target / "botocore" / "data"
    assert {p.name for p in data.iterdir() if p.is_dir()} == SDK_SERVICES
    assert {p.name for p in data.iterdir() if p.is_file()} == set(TOP_FILES)
    endpoints = json.loads((data / "endpoints.json").read_text())
    for partition in endpoints["partitions"]:
        assert set(partition["services"]) == {f"prefix-of-{name}" for name in SDK_SERVICES}
        assert partition["regions"] == {"r-1": {}}


def test_pruning_refuses_a_service_botocore_does_not_know(tmp_path):
    target = _site(tmp_path, ["dynamodb", "ec2"])
    with pytest.raises(BundlingError, match="no models for bedrock-runtime"):
        prune_sdk_models(target, frozenset({"dynamodb", "bedrock-runtime"}))
    assert (target / "botocore" / "data" / "ec2").is_dir()  # nothing removed


def test_pruning_an_asset_without_botocore_says_so(tmp_path):
    with pytest.raises(BundlingError, match="no botocore models"):
        prune_sdk_models(tmp_path)


# Regions of every kind of partition botocore knows: commercial, China, GovCloud, an isolated one.
REGIONS = ("us-east-1", "eu-central-1", "ap-southeast-2", "cn-north-1", "us-gov-west-1", "us-iso-east-1")
RESOLVE = """import json, botocore.session
seen = {}
for service in %r:
    for region in %r:
        client = botocore.session.get_session().create_client(
            service, region_name=region, aws_access_key_id="x", aws_secret_access_key="y"
        )
        signer = client._request_signer
        seen[f"{service} {region}"] = [client.meta.endpoint_url, client.meta.partition, signer.signing_name,
                                       signer.region_name, client.meta.config.signature_version]
print(json.dumps(seen))
"""


def _resolved(env: dict[str, str]) -> dict[str, list[str]]:
    code = RESOLVE % (sorted(SDK_SERVICES), REGIONS)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def test_the_pruned_endpoints_resolve_our_services_as_the_whole_file_does(tmp_path):
    """botocore itself, once with its own `endpoints.json` and once with the pruned one first on its data path
    (`AWS_DATA_PATH`): every listed service's endpoint, partition and signing are the same in every kind of
    partition."""
    session = botocore.session.get_session()
    prefixes = {session.get_service_model(name).metadata["endpointPrefix"] for name in SDK_SERVICES}
    whole = session.get_component("data_loader").load_data("endpoints")
    pruned = pruned_endpoints(whole, prefixes)
    (tmp_path / "endpoints.json").write_text(json.dumps(pruned))
    assert len(json.dumps(pruned)) < len(json.dumps(whole)) / 20
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    assert _resolved({**env, "AWS_DATA_PATH": str(tmp_path)}) == _resolved(env)

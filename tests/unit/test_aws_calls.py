"""Each AWS call a local function makes, mapped to what IAM authorizes, judged by moto's evaluator,
recorded, and refused as AWS refuses it: requests come from real botocore clients, answers are
parsed by botocore."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local.atomic_moto import make_dynamodb_atomic
from local.aws_calls import (
    ACCOUNT_ID,
    ANONYMOUS,
    AwsRequest,
    Permission,
    describe,
    function_arn,
    model_arns,
    signature_of,
)
from local.bedrock_double import BedrockDouble, CoachResponder, Script
from local.dynamodb import LocalDynamoDb
from local.iam_gate import (
    CALLS_ENV,
    POLICIES_ENV,
    AwsCall,
    CallLog,
    IamGate,
    PolicySet,
    access_denied,
)
from local.lambda_api import LambdaApiServer
from local.runtime_api import Invocation, Outcome
from shared.store.schema import COACH_TABLE

REGION = "us-east-1"
FUNCTION = "coach-stream-stream-coach-conversation"
POST_TURN = "coach-stream-coach-conversation-post-turn"
TABLE = "coach-stream-local"
BUCKET = "coach-stream-local-uploads"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{TABLE}"
PROFILE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"
SIDE_MODEL = "amazon.nova-micro-v1:0"
PROFILE_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT_ID}:inference-profile/{PROFILE}"
POST_TURN_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{POST_TURN}"

# Shaped like the statements the CDK gives the conversation function's role, resolved locally.
FUNCTION_STATEMENTS = [
    {
        "Effect": "Allow",
        "Action": ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"],
        "Resource": TABLE_ARN,
    },
    {"Effect": "Allow", "Action": "dynamodb:Query", "Resource": f"{TABLE_ARN}/index/*"},
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/user-uploads/*"},
    {
        "Effect": "Allow",
        "Action": "bedrock:InvokeModelWithResponseStream",
        "Resource": [PROFILE_ARN, f"arn:aws:bedrock:*::foundation-model/{MODEL}"],
    },
    {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": POST_TURN_ARN},
    {"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": "*"},
]
# A second role that may also list the bucket: S3 then tells it a key is missing.
LISTER = "coach-stream-lister"
LISTER_STATEMENTS = [
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"},
    {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}"},
]
POLICIES = {FUNCTION: FUNCTION_STATEMENTS, LISTER: {"Version": "2012-10-17", "Statement": LISTER_STATEMENTS}}


# --- requests as botocore sends them ----------------------------------------------------------------


class Captured(Exception):
    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


def client_as(caller: str, service: str, endpoint: str = "http://127.0.0.1:9", region: str = REGION) -> Any:
    """A boto3 client signing with `caller` as its key id, as each local function does; one attempt."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=caller,
        aws_secret_access_key="local",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=10),
    )


def sent(service: str, operation: str, *, caller: str = FUNCTION, region: str = REGION, **params: Any) -> AwsRequest:
    """What `describe` makes of the request botocore signs for one call (nothing is sent)."""
    client = client_as(caller, service, region=region)

    def capture(request: Any, **_: Any) -> None:
        raise Captured(request)

    client.meta.events.register_first("before-send", capture)
    with pytest.raises(Captured) as captured:
        getattr(client, operation)(**params)
    request = captured.value.request
    url = urlsplit(request.url)
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
    body = request.body.read() if hasattr(request.body, "read") else request.body or b""
    body = body.encode() if isinstance(body, str) else body
    target = f"{url.path}?{url.query}" if url.query else url.path
    return describe(request.method, target, headers, body)


def pairs(request: AwsRequest) -> list[tuple[str, str]]:
    return [(p.action, p.resource) for p in request.permissions]


def test_the_caller_region_and_service_come_from_the_signature() -> None:
    header = (
        f"AWS4-HMAC-SHA256 Credential={FUNCTION}/20260101/eu-west-1/bedrock/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=abc"
    )
    assert (sig := signature_of(header)).caller == FUNCTION
    assert (sig.region, sig.service) == ("eu-west-1", "bedrock")
    presigned = signature_of(None, "X-Amz-Credential=local%2F20260101%2Fus-west-2%2Fs3%2Faws4_request&X-Amz-Expires=60")
    assert (presigned.caller, presigned.region, presigned.service) == ("local", "us-west-2", "s3")
    assert signature_of(None).caller == ANONYMOUS


def test_a_bedrock_runtime_client_signs_as_bedrock() -> None:
    request = sent("bedrock-runtime", "converse", region="eu-west-1", modelId=SIDE_MODEL, messages=[])
    assert (request.caller, request.service, request.region) == (FUNCTION, "bedrock", "eu-west-1")


# --- DynamoDB -----------------------------------------------------------------------------------------


def test_dynamodb_item_calls_are_their_own_action_on_the_table() -> None:
    request = sent("dynamodb", "get_item", TableName=TABLE, Key={"pk": {"S": "a"}})
    assert request.operation == "GetItem"
    assert pairs(request) == [("dynamodb:GetItem", TABLE_ARN)]


def test_a_query_on_an_index_is_authorized_on_the_index() -> None:
    request = sent(
        "dynamodb",
        "query",
        TableName=TABLE,
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :v",
        ExpressionAttributeValues={":v": {"S": "x"}},
    )
    assert pairs(request) == [("dynamodb:Query", f"{TABLE_ARN}/index/gsi1")]


def test_a_transaction_is_authorized_item_by_item_as_the_underlying_actions() -> None:
    key = {"pk": {"S": "a"}, "sk": {"S": "b"}}
    request = sent(
        "dynamodb",
        "transact_write_items",
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": key}},
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": key,
                    "UpdateExpression": "SET n = :n",
                    "ExpressionAttributeValues": {":n": {"N": "1"}},
                }
            },
            {"Delete": {"TableName": "other", "Key": key}},
            {"ConditionCheck": {"TableName": TABLE, "Key": key, "ConditionExpression": "attribute_exists(pk)"}},
            {"Put": {"TableName": TABLE, "Item": {**key, "sk": {"S": "c"}}}},
        ],
    )
    assert request.operation == "TransactWriteItems"
    assert pairs(request) == [
        ("dynamodb:PutItem", TABLE_ARN),
        ("dynamodb:UpdateItem", TABLE_ARN),
        ("dynamodb:DeleteItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/other"),
        ("dynamodb:ConditionCheckItem", TABLE_ARN),
    ]
    reads = sent("dynamodb", "transact_get_items", TransactItems=[{"Get": {"TableName": TABLE, "Key": key}}])
    assert pairs(reads) == [("dynamodb:GetItem", TABLE_ARN)]


def test_batches_keep_their_own_action_once_per_table() -> None:
    key = {"pk": {"S": "a"}}
    request = sent("dynamodb", "batch_get_item", RequestItems={TABLE: {"Keys": [key, key]}, "other": {"Keys": [key]}})
    assert [action for action, _ in pairs(request)] == ["dynamodb:BatchGetItem"] * 2
    assert [resource.rsplit("/", 1)[1] for _, resource in pairs(request)] == [TABLE, "other"]
    writes = sent("dynamodb", "batch_write_item", RequestItems={TABLE: [{"PutRequest": {"Item": key}}]})
    assert pairs(writes) == [("dynamodb:BatchWriteItem", TABLE_ARN)]


# --- S3 ----------------------------------------------------------------------------------------------


def test_s3_object_and_bucket_calls() -> None:
    key = "user-uploads/u1/form check é.png"
    object_arn = f"arn:aws:s3:::{BUCKET}/{key}"
    assert pairs(sent("s3", "get_object", Bucket=BUCKET, Key=key)) == [("s3:GetObject", object_arn)]
    assert pairs(sent("s3", "head_object", Bucket=BUCKET, Key=key)) == [("s3:GetObject", object_arn)]
    assert pairs(sent("s3", "put_object", Bucket=BUCKET, Key=key, Body=b"x")) == [("s3:PutObject", object_arn)]
    assert pairs(sent("s3", "delete_object", Bucket=BUCKET, Key=key)) == [("s3:DeleteObject", object_arn)]
    versioned = sent("s3", "get_object", Bucket=BUCKET, Key=key, VersionId="v1")
    assert pairs(versioned) == [("s3:GetObjectVersion", object_arn)]
    listing = sent("s3", "list_objects_v2", Bucket=BUCKET, Prefix="user-uploads/")
    assert (listing.operation, pairs(listing)) == ("ListObjectsV2", [("s3:ListBucket", f"arn:aws:s3:::{BUCKET}")])
    assert pairs(sent("s3", "create_bucket", Bucket="new")) == [("s3:CreateBucket", "arn:aws:s3:::new")]


def test_a_copy_needs_write_on_the_target_and_read_on_the_source() -> None:
    request = sent("s3", "copy_object", Bucket=BUCKET, Key="b/new", CopySource={"Bucket": "src", "Key": "a/old"})
    assert request.operation == "CopyObject"
    assert pairs(request) == [
        ("s3:PutObject", f"arn:aws:s3:::{BUCKET}/b/new"),
        ("s3:GetObject", "arn:aws:s3:::src/a/old"),
    ]


def test_a_virtual_hosted_request_names_the_bucket_in_the_host() -> None:
    request = describe("GET", "/user-uploads/u1/a.png", {"Host": f"{BUCKET}.s3.us-east-1.amazonaws.com"})
    assert pairs(request) == [("s3:GetObject", f"arn:aws:s3:::{BUCKET}/user-uploads/u1/a.png")]


def test_a_request_nothing_maps_is_unmapped_and_denied_to_a_checked_caller() -> None:
    request = sent("s3", "get_bucket_policy", Bucket=BUCKET)
    assert request.operation == "unmapped"
    decision = IamGate(PolicySet(POLICIES)).check(request)
    assert [call.action for call in decision.calls] == ["s3:unmapped"]
    assert not decision.allowed


# --- Bedrock and Lambda ------------------------------------------------------------------------------


def test_a_cross_region_profile_needs_the_profile_and_its_foundation_model() -> None:
    stream = sent("bedrock-runtime", "converse_stream", modelId=PROFILE, messages=[])
    assert stream.operation == "ConverseStream"
    assert pairs(stream) == [
        ("bedrock:InvokeModelWithResponseStream", PROFILE_ARN),
        ("bedrock:InvokeModelWithResponseStream", f"arn:aws:bedrock:{REGION}::foundation-model/{MODEL}"),
    ]
    plain = sent("bedrock-runtime", "converse", modelId=SIDE_MODEL, messages=[])
    assert pairs(plain) == [("bedrock:InvokeModel", f"arn:aws:bedrock:{REGION}::foundation-model/{SIDE_MODEL}")]
    invoke = sent("bedrock-runtime", "invoke_model", modelId=f"eu.{SIDE_MODEL}", body=b"{}")
    assert [action for action, _ in pairs(invoke)] == ["bedrock:InvokeModel"] * 2


def test_global_profiles_and_profile_arns() -> None:
    assert model_arns(f"global.{MODEL}", region=REGION) == [
        f"arn:aws:bedrock:{REGION}:{ACCOUNT_ID}:inference-profile/global.{MODEL}",
        f"arn:aws:bedrock:{REGION}::foundation-model/{MODEL}",
        f"arn:aws:bedrock:::foundation-model/{MODEL}",
    ]
    arn = f"arn:aws:bedrock:eu-west-1:111122223333:inference-profile/eu.{MODEL}"
    assert model_arns(arn, region=REGION) == [arn, f"arn:aws:bedrock:eu-west-1::foundation-model/{MODEL}"]
    application = f"arn:aws:bedrock:{REGION}:{ACCOUNT_ID}:application-inference-profile/abc123"
    assert model_arns(application, region=REGION) == [application]


def test_lambda_invoke_is_invoke_function_on_the_function_arn() -> None:
    assert pairs(sent("lambda", "invoke", FunctionName=POST_TURN)) == [("lambda:InvokeFunction", POST_TURN_ARN)]
    by_arn = sent("lambda", "invoke", FunctionName=POST_TURN_ARN, InvocationType="Event")
    assert pairs(by_arn) == [("lambda:InvokeFunction", POST_TURN_ARN)]
    qualified = sent("lambda", "invoke", FunctionName=POST_TURN, Qualifier="live")
    assert pairs(qualified) == [("lambda:InvokeFunction", f"{POST_TURN_ARN}:live")]
    assert function_arn(f"{ACCOUNT_ID}:function:{POST_TURN}:3", region=REGION) == f"{POST_TURN_ARN}:3"


# --- evaluation through moto's evaluator ---------------------------------------------------------------


def test_allow_explicit_deny_and_no_statement() -> None:
    policies = PolicySet(POLICIES)
    get_item = Permission("dynamodb:GetItem", TABLE_ARN)
    assert policies.verdict(FUNCTION, get_item) == "allowed"
    assert policies.verdict(FUNCTION, Permission("dynamodb:GetItem", TABLE_ARN + "-other")) == "denied"
    assert policies.verdict(FUNCTION, Permission("dynamodb:Scan", TABLE_ARN)) == "denied"
    assert policies.verdict("local", get_item) == "unchecked"

    gate = IamGate(policies)
    delete = sent("dynamodb", "delete_item", TableName=TABLE, Key={"pk": {"S": "a"}})
    denied = gate.check(delete)
    assert denied.explicit_deny
    assert "with an explicit deny in an identity-based policy" in gate.denial(denied).body.decode()
    scan = gate.check(sent("dynamodb", "scan", TableName=TABLE))
    assert not scan.explicit_deny
    assert "because no identity-based policy allows the dynamodb:Scan action" in gate.denial(scan).body.decode()


def test_an_explicit_deny_wins_over_an_allow() -> None:
    statements = [
        {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "dynamodb:PutItem", "Resource": TABLE_ARN},
    ]
    policies = PolicySet({FUNCTION: statements})
    assert policies.verdict(FUNCTION, Permission("dynamodb:UpdateItem", TABLE_ARN)) == "allowed"
    assert policies.verdict(FUNCTION, Permission("dynamodb:PutItem", TABLE_ARN)) == "denied"


def test_one_denied_item_denies_the_whole_transaction_and_each_item_is_recorded(tmp_path: Path) -> None:
    key = {"pk": {"S": "a"}, "sk": {"S": "b"}}
    request = sent(
        "dynamodb",
        "transact_write_items",
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": key}},
            {"ConditionCheck": {"TableName": TABLE, "Key": key, "ConditionExpression": "attribute_exists(pk)"}},
        ],
    )
    gate = IamGate(PolicySet(POLICIES), CallLog(tmp_path / "calls.jsonl"))
    decision = gate.check(request)
    assert not decision.allowed
    assert gate.log is not None
    assert [(c.action, c.verdict, c.operation) for c in gate.log.read()] == [
        ("dynamodb:PutItem", "allowed", "TransactWriteItems"),
        ("dynamodb:ConditionCheckItem", "denied", "TransactWriteItems"),
    ]


def test_a_profile_without_its_foundation_model_is_denied() -> None:
    only_profile = [{"Effect": "Allow", "Action": "bedrock:InvokeModelWithResponseStream", "Resource": PROFILE_ARN}]
    request = sent("bedrock-runtime", "converse_stream", modelId=PROFILE, messages=[])
    decision = IamGate(PolicySet({FUNCTION: only_profile})).check(request)
    assert [c.verdict for c in decision.calls] == ["allowed", "denied"]
    assert IamGate(PolicySet(POLICIES)).check(request).allowed


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::x/*"},
        {
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "true"}},
        },
        {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": {"Fn::GetAtt": ["CoachTable", "Arn"]}},
        {"Action": "dynamodb:GetItem", "Resource": "*"},
    ],
)
def test_statements_moto_would_judge_wrongly_are_refused(statement: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=FUNCTION):
        PolicySet({FUNCTION: [statement]})


def test_the_log_takes_appends_from_many_threads_whole(tmp_path: Path) -> None:
    log = CallLog(tmp_path / "calls.jsonl")
    call = AwsCall(FUNCTION, "dynamodb", "dynamodb:GetItem", TABLE_ARN + "/" + "x" * 2000, "allowed", "GetItem")

    def write() -> None:
        for _ in range(100):
            log.append([call])

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert log.read() == [call] * 800


def test_a_gate_hands_its_files_to_another_process(tmp_path: Path) -> None:
    policies = tmp_path / "policies.json"
    policies.write_text(json.dumps(POLICIES))
    gate = IamGate.from_paths(calls=tmp_path / "calls.jsonl", policies=policies)
    environment = gate.environment()
    assert set(environment) == {CALLS_ENV, POLICIES_ENV}
    copy = IamGate.from_environment(environment)
    assert copy is not None and copy.policies is not None
    assert copy.policies.verdict(LISTER, Permission("s3:ListBucket", f"arn:aws:s3:::{BUCKET}")) == "allowed"
    assert IamGate.from_environment({}) is None


# --- real clients against the doubles ------------------------------------------------------------------


@pytest.fixture
def gate(tmp_path: Path) -> IamGate:
    policies = tmp_path / "policies.json"
    policies.write_text(json.dumps(POLICIES))
    return IamGate.from_paths(calls=tmp_path / "calls.jsonl", policies=policies)


def logged(gate: IamGate) -> list[tuple[str, str, str, str]]:
    assert gate.log is not None
    return [(c.caller, c.action, c.resource, c.verdict) for c in gate.log.read()]


def denied_code(call: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as raised:
        call()
    error = raised.value.response["Error"]
    return error["Code"], raised.value.response["ResponseMetadata"]["HTTPStatusCode"], error.get("Message", "")


def test_the_bedrock_double_refuses_a_model_call_the_role_does_not_allow(gate: IamGate) -> None:
    with BedrockDouble(responder=CoachResponder(speed=50), iam=gate) as double:
        double.enqueue(Script.reply("Hello ", "there."))
        client = client_as(FUNCTION, "bedrock-runtime", double.url)
        stream = client.converse_stream(modelId=PROFILE, messages=[{"role": "user", "content": [{"text": "hi"}]}])
        text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in stream["stream"] if "contentBlockDelta" in e)
        assert text == "Hello there."

        code, status, message = denied_code(lambda: client.converse(modelId=PROFILE, messages=[]))
        assert (code, status) == ("AccessDeniedException", 403)
        assert f"assumed-role/{FUNCTION}/{FUNCTION} is not authorized to perform: bedrock:InvokeModel" in message
        assert len(double.requests) == 1  # the refused call never reached the model

        tester = client_as("test", "bedrock-runtime", double.url)
        assert tester.converse(modelId=SIDE_MODEL, messages=[{"role": "user", "content": [{"text": "json"}]}])
    fm = f"arn:aws:bedrock:{REGION}::foundation-model/"
    assert logged(gate) == [
        (FUNCTION, "bedrock:InvokeModelWithResponseStream", PROFILE_ARN, "allowed"),
        (FUNCTION, "bedrock:InvokeModelWithResponseStream", fm + MODEL, "allowed"),
        (FUNCTION, "bedrock:InvokeModel", PROFILE_ARN, "denied"),
        (FUNCTION, "bedrock:InvokeModel", fm + MODEL, "denied"),
        ("test", "bedrock:InvokeModel", fm + SIDE_MODEL, "unchecked"),
    ]


class Echo:
    timeout_seconds = 5.0

    def invoke(self, event: Any) -> Invocation:
        invocation = Invocation(event=event, timeout_seconds=self.timeout_seconds)
        invocation.deliver(Outcome("buffered", json.dumps({"echo": event}).encode()))
        return invocation


def test_the_lambda_api_refuses_an_invoke_the_role_does_not_allow(gate: IamGate) -> None:
    server = LambdaApiServer({POST_TURN: Echo(), "coach-stream-coach-api": Echo()}, iam=gate).start()
    try:
        client = client_as(FUNCTION, "lambda", server.url)
        response = client.invoke(FunctionName=POST_TURN, Payload=b'{"job": 1}')
        assert json.loads(response["Payload"].read()) == {"echo": {"job": 1}}
        code, status, message = denied_code(lambda: client.invoke(FunctionName="coach-stream-coach-api"))
        assert (code, status) == ("AccessDeniedException", 403)
        assert "lambda:InvokeFunction" in message
    finally:
        server.stop()
    assert logged(gate) == [
        (FUNCTION, "lambda:InvokeFunction", POST_TURN_ARN, "allowed"),
        (FUNCTION, "lambda:InvokeFunction", POST_TURN_ARN.replace(POST_TURN, "coach-stream-coach-api"), "denied"),
    ]


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalDynamoDb, IamGate]]:
    """moto's server process behind the gate, configured as the stack configures it: by environment."""
    folder = tmp_path_factory.mktemp("iam")
    (folder / "policies.json").write_text(json.dumps(POLICIES))
    gate = IamGate.from_paths(calls=folder / "calls.jsonl", policies=folder / "policies.json")
    server = LocalDynamoDb()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in gate.environment().items():
            patch.setenv(name, value)
        server.start()
    try:
        make_dynamodb_atomic()
        admin = server.client()
        admin.create_table(**COACH_TABLE.create_table_request(TABLE))
        server.create_bucket(BUCKET)
        yield server, gate
    finally:
        server.stop()


def test_moto_refuses_dynamodb_calls_the_role_does_not_allow(moto_server: tuple[LocalDynamoDb, IamGate]) -> None:
    server, gate = moto_server
    client = client_as(FUNCTION, "dynamodb", server.endpoint)
    item = {"pk": {"S": "user#1"}, "sk": {"S": "coach#1"}, "name": {"S": "Sam"}}
    client.put_item(TableName=TABLE, Item=item)
    assert client.get_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})["Item"] == item

    code, status, message = denied_code(lambda: client.scan(TableName=TABLE))
    assert (code, status) == ("AccessDeniedException", 400)
    assert message.endswith(
        f"on resource: {TABLE_ARN} because no identity-based policy allows the dynamodb:Scan action"
    )
    check = {
        "TableName": TABLE,
        "Key": {"pk": item["pk"], "sk": item["sk"]},
        "ConditionExpression": "attribute_exists(pk)",
    }
    transaction = [{"Put": {"TableName": TABLE, "Item": {**item, "name": {"S": "Changed"}}}}, {"ConditionCheck": check}]
    code, _, _ = denied_code(lambda: client.transact_write_items(TransactItems=transaction[1:]))
    assert code == "AccessDeniedException"
    stored = server.client().get_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})["Item"]
    assert stored == item  # moto got the allowed body intact, and never saw the refused one

    calls = [(c.caller, c.action, c.verdict) for c in gate.log.read() if c.service == "dynamodb"] if gate.log else []
    assert ("local", "dynamodb:CreateTable", "unchecked") in calls
    assert [c for c in calls if c[0] == FUNCTION] == [
        (FUNCTION, "dynamodb:PutItem", "allowed"),
        (FUNCTION, "dynamodb:GetItem", "allowed"),
        (FUNCTION, "dynamodb:Scan", "denied"),
        (FUNCTION, "dynamodb:ConditionCheckItem", "denied"),
    ]


def test_moto_refuses_s3_reads_outside_the_granted_prefix(moto_server: tuple[LocalDynamoDb, IamGate]) -> None:
    server, gate = moto_server
    admin = server.client("s3")
    admin.put_object(Bucket=BUCKET, Key="user-uploads/u1/a.png", Body=b"png")
    admin.put_object(Bucket=BUCKET, Key="private/b.png", Body=b"secret")
    client = client_as(FUNCTION, "s3", server.endpoint)

    assert client.get_object(Bucket=BUCKET, Key="user-uploads/u1/a.png")["Body"].read() == b"png"
    code, status, message = denied_code(lambda: client.get_object(Bucket=BUCKET, Key="private/b.png"))
    assert (code, status) == ("AccessDenied", 403)
    assert f"s3:GetObject on resource: arn:aws:s3:::{BUCKET}/private/b.png" in message
    assert denied_code(lambda: client.head_object(Bucket=BUCKET, Key="private/b.png"))[:2] == ("403", 403)
    assert (
        denied_code(lambda: client.put_object(Bucket=BUCKET, Key="user-uploads/u1/c.png", Body=b"x"))[0]
        == "AccessDenied"
    )

    assert gate.log is not None
    mine = [(c.action, c.resource.rsplit("/", 1)[-1], c.verdict) for c in gate.log.read() if c.caller == FUNCTION]
    assert [c for c in mine if c[0].startswith("s3:")] == [
        ("s3:GetObject", "a.png", "allowed"),
        ("s3:GetObject", "b.png", "denied"),
        ("s3:GetObject", "b.png", "denied"),
        ("s3:PutObject", "c.png", "denied"),
    ]


def test_a_missing_key_is_403_to_a_role_that_may_not_list_the_bucket(
    moto_server: tuple[LocalDynamoDb, IamGate],
) -> None:
    server, gate = moto_server
    key = "user-uploads/u1/never-uploaded.png"

    code, status, _ = denied_code(lambda: client_as(FUNCTION, "s3", server.endpoint).get_object(Bucket=BUCKET, Key=key))
    assert (code, status) == ("AccessDenied", 403)
    head = denied_code(lambda: client_as(FUNCTION, "s3", server.endpoint).head_object(Bucket=BUCKET, Key=key))
    assert head[:2] == ("403", 403)
    code, status, _ = denied_code(lambda: client_as(LISTER, "s3", server.endpoint).get_object(Bucket=BUCKET, Key=key))
    assert (code, status) == ("NoSuchKey", 404)

    assert gate.log is not None
    hidden = [c for c in gate.log.read() if c.operation.endswith("of a missing key")]
    assert [(c.caller, c.action, c.resource, c.verdict) for c in hidden] == [
        (FUNCTION, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}", "denied"),
    ] * 2


def test_each_service_answer_is_the_error_botocore_expects() -> None:
    """The answer shapes on their own: status, and the header or body each protocol reads its code from."""
    dynamodb = access_denied("dynamodb", "no")
    assert dynamodb.status == 400
    assert json.loads(dynamodb.body)["__type"].endswith("#AccessDeniedException")
    assert access_denied("s3", "no", "HEAD").body == b""
    assert b"<Code>AccessDenied</Code>" in access_denied("s3", "no").body
    assert access_denied("bedrock", "no").headers["x-amzn-ErrorType"].startswith("AccessDeniedException:")
    assert json.loads(access_denied("lambda", "no").body) == {"Type": "User", "message": "no"}

"""The local event source mapping (`local/event_source_mapping.py`) against a real moto server: its DynamoDB
Streams API, its SQS, behind the IAM gate, with functions that are plain Python callables. What needs the
stream's clock moved runs against the same server app in this process."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodbstreams.models import dynamodbstreams_backends
from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.serving import make_server

from functions.catalog import POST_TURN_STREAM
from local import atomic_moto
from local.dynamodb import LocalDynamoDb
from local.event_source_mapping import EventSourceMapping, MappingError, StreamPoller
from local.iam_gate import CallLog, IamGate
from local.lambda_api import InvokeResult
from ops.stream_events import read_batch
from shared.coach_conversation.post_turn import PostTurnJob
from shared.coach_conversation.post_turn_work import PostTurnDependencies, workout_id_for
from shared.models import ModelSettings
from shared.store.dynamodb.conversations import DynamoConversationRepository
from shared.store.dynamodb.memories import DynamoMemoryRepository, DynamoWorkoutRepository
from shared.store.records import ChatMessage
from tests.fixtures.fake_model import ScriptedModel

ACCOUNT = "123456789012"
REGION = "us-east-1"
ALLOWED = "fn-allowed"  # a function whose role may read the streams and send to the queues
DENIED = "fn-denied"  # one whose role may not
STREAM_ACTIONS = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]


@pytest.fixture(scope="module")
def gate_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("esm-gate")
    tables = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/esm-*"
    policies = {
        ALLOWED: [
            {"Effect": "Allow", "Action": ["dynamodb:ListStreams"], "Resource": "*"},
            {"Effect": "Allow", "Action": STREAM_ACTIONS, "Resource": f"{tables}/stream/*"},
            {"Effect": "Allow", "Action": ["sqs:GetQueueUrl", "sqs:SendMessage"], "Resource": "*"},
        ],
        DENIED: [{"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": tables}],
    }
    (folder / "policies.json").write_text(json.dumps(policies))
    (folder / "calls.jsonl").write_text("")
    return {"policies": folder / "policies.json", "calls": folder / "calls.jsonl"}


@pytest.fixture(scope="module")
def server(gate_files: dict[str, Path]) -> Iterator[LocalDynamoDb]:
    gate = IamGate.from_paths(calls=gate_files["calls"], policies=gate_files["policies"])
    local = LocalDynamoDb().start(environment=gate.environment())
    yield local
    local.stop()


class World:
    """One table with a NEW_IMAGE stream and one queue, both fresh, on the shared server."""

    def __init__(self, server: LocalDynamoDb) -> None:
        self.server = server
        self.table_name = f"esm-{uuid.uuid4().hex[:8]}"
        server.create_table(self.table_name, stream_view_type="NEW_IMAGE")
        self.queue_name = f"{self.table_name}-dlq"
        self.queue_url = server.create_queue(self.queue_name)
        self.table = server.resource().Table(self.table_name)
        self.pollers: list[StreamPoller] = []

    @property
    def stream_pattern(self) -> str:
        return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{self.table_name}/stream/*"

    def mapping(self, **changes: Any) -> EventSourceMapping:
        settings: dict[str, Any] = {
            "logical_id": "TestMapping",
            "function_name": ALLOWED,
            "event_source_arn": self.stream_pattern,
            "filters": (POST_TURN_STREAM.filter_pattern(),),
            "batch_size": 2,
            "maximum_retry_attempts": 2,
            "maximum_record_age_seconds": 3600,
            "bisect_batch_on_function_error": True,
            "report_batch_item_failures": True,
            "starting_position": "TRIM_HORIZON",
            "on_failure_destination": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{self.queue_name}",
        }
        return EventSourceMapping(**{**settings, **changes})

    def poll(self, function: Callable[[dict[str, Any]], InvokeResult], **changes: Any) -> StreamPoller:
        clock = changes.pop("clock", time.time)
        poller = StreamPoller(
            self.mapping(**changes),
            function,
            endpoint=self.server.endpoint,
            region=REGION,
            account=ACCOUNT,
            poll_seconds=0.05,
            retry_delays=(0.01,),
            clock=clock,
        )
        self.pollers.append(poller.start())
        return poller

    def put_job(self, name: str) -> None:
        """An outbox item as a turn's transaction writes it (what the filter lets through)."""
        self.table.put_item(
            Item={
                "pk": "USER#u#CONV#c",
                "sk": f"POSTTURN#{name}",
                "type": "post-turn-job",
                "job": {"name": name, "count": 3},
                "expiresAt": int(time.time()) + 3600,
            }
        )

    def dead_letters(self, wait: float = 5.0) -> list[dict[str, Any]]:
        client = self.server.client("sqs")
        response = client.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=int(wait))
        return [json.loads(message["Body"]) for message in response.get("Messages", [])]

    def stop(self) -> None:
        for poller in self.pollers:
            poller.stop()


@pytest.fixture
def world(server: LocalDynamoDb) -> Iterator[World]:
    created = World(server)
    yield created
    created.stop()


class Function:
    """A function as the poller sees one: each call gets the event and answers with an `InvokeResult`."""

    def __init__(self, answer: Callable[[list[str]], InvokeResult] | None = None) -> None:
        self.batches: list[list[str]] = []
        self.events: list[dict[str, Any]] = []
        self.answer = answer or (lambda names: ok())
        self.changed = threading.Condition()

    def __call__(self, event: dict[str, Any]) -> InvokeResult:
        names = [r["dynamodb"]["NewImage"]["sk"]["S"].removeprefix("POSTTURN#") for r in event["Records"]]
        with self.changed:
            self.events.append(event)
            self.batches.append(names)
            self.changed.notify_all()
        return self.answer(names)

    def sequence(self, name: str) -> str:
        for event in self.events:
            for record in event["Records"]:
                if record["dynamodb"]["NewImage"]["sk"]["S"] == f"POSTTURN#{name}":
                    return str(record["dynamodb"]["SequenceNumber"])
        raise AssertionError(f"{name} never reached the function")

    def wait_for(self, predicate: Callable[[list[list[str]]], bool], seconds: float = 10.0) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self.batches), seconds), self.batches


def ok(payload: Any = None) -> InvokeResult:
    return InvokeResult(True, json.dumps(payload if payload is not None else {"batchItemFailures": []}).encode())


def crash(names: list[str]) -> InvokeResult:
    document = {"errorType": "RuntimeError", "errorMessage": "boom"}
    return InvokeResult(False, json.dumps(document).encode(), "RuntimeError")


def calls_of(gate_files: dict[str, Path], caller: str) -> set[tuple[str, str]]:
    return {(c.action, c.verdict) for c in CallLog(gate_files["calls"]).read() if c.caller == caller}


def test_inserted_jobs_reach_the_function_in_batches_of_the_real_event_shape(world: World, gate_files) -> None:
    for name in ("a", "b", "c"):
        world.put_job(name)
    world.table.put_item(Item={"pk": "USER#u", "sk": "COACH#x", "type": "coach"})  # no job: filtered out
    world.table.update_item(  # a MODIFY of a job item: filtered out
        Key={"pk": "USER#u#CONV#c", "sk": "POSTTURN#a"},
        UpdateExpression="SET touched = :t",
        ExpressionAttributeValues={":t": True},
    )
    function = Function()

    world.poll(function)
    function.wait_for(lambda batches: sum(map(len, batches)) >= 3)

    assert function.batches == [["a", "b"], ["c"]]  # the batch size, in stream order
    record = function.events[0]["Records"][0]
    assert list(record) == [
        "eventID",
        "eventName",
        "eventVersion",
        "eventSource",
        "awsRegion",
        "dynamodb",
        "eventSourceARN",
    ]
    assert (record["eventName"], record["eventSource"], record["awsRegion"]) == ("INSERT", "aws:dynamodb", REGION)
    assert record["eventSourceARN"].startswith(world.stream_pattern[:-1])
    stream = record["dynamodb"]
    assert set(stream) == {
        "ApproximateCreationDateTime",
        "Keys",
        "NewImage",
        "SequenceNumber",
        "SizeBytes",
        "StreamViewType",
    }
    assert isinstance(stream["ApproximateCreationDateTime"], int)
    assert stream["Keys"] == {"pk": {"S": "USER#u#CONV#c"}, "sk": {"S": "POSTTURN#a"}}
    assert stream["NewImage"]["job"] == {"M": {"name": {"S": "a"}, "count": {"N": "3"}}}
    assert stream["StreamViewType"] == "NEW_IMAGE"
    json.dumps(function.events)  # JSON all the way, as Lambda's payload is
    time.sleep(0.3)
    assert sum(map(len, function.batches)) == 3, "the coach item and the MODIFY never reach the function"
    # The poller read as the function's role: every read was checked against it and allowed.
    assert calls_of(gate_files, ALLOWED) >= {
        ("dynamodb:ListStreams", "allowed"),
        ("dynamodb:DescribeStream", "allowed"),
        ("dynamodb:GetShardIterator", "allowed"),
        ("dynamodb:GetRecords", "allowed"),
    }


def test_a_reported_failure_is_retried_from_that_record_then_described_in_the_queue(world: World, gate_files) -> None:
    for name in ("good-1", "bad", "good-2"):
        world.put_job(name)

    def answer(names: list[str]) -> InvokeResult:
        failed = [{"itemIdentifier": function.sequence(n)} for n in names if n == "bad"]
        return ok({"batchItemFailures": failed})

    function = Function(answer)
    world.poll(function, maximum_retry_attempts=2)
    function.wait_for(lambda batches: ["good-2"] in batches)

    # The first batch's success is kept; the failed record is retried alone, twice, and only then does the
    # shard move on: the next record waits behind it, as in Lambda.
    assert function.batches == [["good-1", "bad"], ["bad"], ["bad"], ["good-2"]]
    (letter,) = world.dead_letters()
    assert letter["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert letter["requestContext"]["approximateInvokeCount"] == 3
    assert letter["requestContext"]["functionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{ALLOWED}"
    assert letter["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}  # no function error
    assert letter["version"] == "1.0"
    info = letter["DDBStreamBatchInfo"]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == function.sequence("bad")
    assert info["batchSize"] == 1
    assert info["streamArn"] == function.events[0]["Records"][0]["eventSourceARN"]
    assert info["approximateArrivalOfFirstRecord"].endswith("Z")
    assert info["shardId"].startswith("shardId-")
    # The description leads back to the record while the stream keeps it.
    (named,) = read_batch(world.server.client("dynamodbstreams"), info)
    assert named["dynamodb"]["Keys"]["sk"] == {"S": "POSTTURN#bad"}
    assert ("sqs:SendMessage", "allowed") in calls_of(gate_files, ALLOWED)


def test_a_function_error_splits_the_batch_and_splitting_spends_no_retry(world: World) -> None:
    for name in ("a", "bad", "c", "d"):
        world.put_job(name)
    function = Function(lambda names: crash(names) if "bad" in names else ok())

    world.poll(function, batch_size=4, maximum_retry_attempts=1)
    function.wait_for(lambda batches: ["c", "d"] in batches)

    assert function.batches == [["a", "bad", "c", "d"], ["a", "bad"], ["a"], ["bad"], ["bad"], ["c", "d"]]
    (letter,) = world.dead_letters()
    assert letter["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert letter["responseContext"]["functionError"] == "Unhandled"
    assert letter["DDBStreamBatchInfo"]["batchSize"] == 1


def test_without_a_split_a_failing_batch_is_retried_whole(world: World) -> None:
    for name in ("a", "bad"):
        world.put_job(name)
    function = Function(lambda names: crash(names) if "bad" in names else ok())

    world.poll(function, bisect_batch_on_function_error=False, maximum_retry_attempts=1)
    (letter,) = world.dead_letters()

    assert function.batches == [["a", "bad"], ["a", "bad"]]
    assert letter["DDBStreamBatchInfo"]["batchSize"] == 2


def test_an_identifier_that_is_not_in_the_batch_fails_all_of_it(world: World) -> None:
    world.put_job("a")
    function = Function(lambda names: ok({"batchItemFailures": [{"itemIdentifier": "not-a-sequence-number"}]}))

    world.poll(function, maximum_retry_attempts=1)
    (letter,) = world.dead_letters()

    assert function.batches == [["a"], ["a"]]
    assert letter["DDBStreamBatchInfo"]["batchSize"] == 1


def test_a_record_past_its_maximum_age_is_described_without_an_invocation(world: World) -> None:
    world.put_job("late")
    function = Function()

    world.poll(function, maximum_record_age_seconds=60, clock=lambda: time.time() + 3600)
    (letter,) = world.dead_letters()

    assert function.batches == []
    assert letter["requestContext"]["condition"] == "MaximumRecordAgeExceeded"
    assert letter["requestContext"]["approximateInvokeCount"] == 0
    assert "responseContext" not in letter


def test_a_role_that_may_not_read_the_stream_invokes_nothing(world: World, gate_files) -> None:
    world.put_job("a")
    function = Function()

    world.poll(function, function_name=DENIED)
    time.sleep(0.5)

    assert function.batches == []
    assert ("dynamodb:ListStreams", "denied") in calls_of(gate_files, DENIED)


def test_the_outbox_item_the_store_writes_is_what_the_post_turn_handler_runs(world: World) -> None:
    from functions.coach_conversation_post_turn.handler import process

    conversations = DynamoConversationRepository(world.table)
    workouts = DynamoWorkoutRepository(world.table)
    deps = PostTurnDependencies(
        model=ScriptedModel('{"performedOn": "2025-03-10", "summary": "Squats", "exercises": [{"name": "Squat"}]}'),
        model_settings=ModelSettings(side_model_id="side-model"),
        observe=lambda name, value: None,
        conversations=conversations,
        memories=DynamoMemoryRepository(world.table),
        workouts=workouts,
    )
    conversation = conversations.create_conversation("u", "coach", "Training")
    user = ChatMessage(id="m1", role="user", content="5x5 squats at 100 kg", timestamp="2025-03-10T08:00:00Z")
    reply = ChatMessage(id="m2", role="assistant", content="Nice.", timestamp="2025-03-10T08:00:01Z")
    job = PostTurnJob(
        user_id="u",
        coach_id="coach",
        conversation_id=conversation.conversation_id,
        user_message_id="m1",
        ai_message_id="m2",
        user_text=user.content,
        ai_text=reply.content,
        message_timestamp=user.timestamp,
        is_workout_log=True,
        has_memory_to_save=False,
        message_count=2,
    )
    turn = conversations.begin_turn(conversation, user, digest="d", until_epoch=int(time.time()) + 60)
    conversations.finish_turn(conversation, turn, reply, post_turn_job=job.model_dump(by_alias=True))

    answers: list[dict[str, Any]] = []

    def handler(event: dict[str, Any]) -> InvokeResult:
        answers.append(process(event, deps))
        return ok(answers[-1])

    world.poll(handler)
    deadline = time.monotonic() + 10
    while not answers and time.monotonic() < deadline:
        time.sleep(0.05)

    assert answers == [{"batchItemFailures": []}]
    assert [w.workout_id for w in workouts.recent_workouts("u")] == [workout_id_for("m1")]


def test_a_mapping_is_read_from_its_template_resource() -> None:
    names = {"PostTurnFunction": "coach-stream-post-turn", "Queue": "arn:aws:sqs:us-east-1:1:q"}

    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and "Ref" in value:
            return names[value["Ref"]]
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            return names[value["Fn::GetAtt"][0]]
        if isinstance(value, dict) and "Fn::ImportValue" in value:
            return "arn:aws:dynamodb:us-east-1:1:table/t/stream/*"
        return value

    properties = {
        "BatchSize": 2,
        "BisectBatchOnFunctionError": True,
        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["Queue", "Arn"]}}},
        "EventSourceArn": {"Fn::ImportValue": "Data:StreamArn"},
        "FilterCriteria": {"Filters": [{"Pattern": json.dumps(POST_TURN_STREAM.filter_pattern())}]},
        "FunctionName": {"Ref": "PostTurnFunction"},
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "MaximumRecordAgeInSeconds": 21600,
        "MaximumRetryAttempts": 3,
        "StartingPosition": "TRIM_HORIZON",
        "Tags": [],
    }
    mapping = EventSourceMapping.from_template("M", properties, resolve)
    assert mapping == EventSourceMapping(
        logical_id="M",
        function_name="coach-stream-post-turn",
        event_source_arn="arn:aws:dynamodb:us-east-1:1:table/t/stream/*",
        filters=(POST_TURN_STREAM.filter_pattern(),),
        batch_size=2,
        maximum_retry_attempts=3,
        maximum_record_age_seconds=21600,
        bisect_batch_on_function_error=True,
        report_batch_item_failures=True,
        starting_position="TRIM_HORIZON",
        on_failure_destination="arn:aws:sqs:us-east-1:1:q",
    )
    assert mapping.table_name == "t"
    with pytest.raises(MappingError, match="TumblingWindowInSeconds"):
        EventSourceMapping.from_template("M", {**properties, "TumblingWindowInSeconds": 60}, resolve)
    with pytest.raises(MappingError, match="only DynamoDB stream"):
        EventSourceMapping.from_template("M", {**properties, "EventSourceArn": "arn:aws:sqs:us-east-1:1:q"}, resolve)
    sns = {"OnFailure": {"Destination": "arn:aws:sns:us-east-1:1:t"}}
    with pytest.raises(MappingError, match="only SQS"):
        EventSourceMapping.from_template("M", {**properties, "DestinationConfig": sns}, resolve)


def job_item(name: str) -> dict[str, Any]:
    """`World.put_job`'s item as moto's backend takes it (written in this thread, under the server's lock)."""
    return {
        "pk": {"S": "USER#u#CONV#c"},
        "sk": {"S": f"POSTTURN#{name}"},
        "type": {"S": "post-turn-job"},
        "job": {"M": {"name": {"S": name}, "count": {"N": "3"}}},
        "expiresAt": {"N": str(int(time.time()) + 3600)},
    }


@pytest.fixture(scope="module")
def server_here() -> Iterator[LocalDynamoDb]:
    """The server's app (no IAM gate) in this process: its clock and lock are the test's to hold."""
    app = atomic_moto.application({})
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield LocalDynamoDb(port=server.server_port)
    server.shutdown()
    thread.join()


def test_a_stream_trimmed_past_the_last_record_read_is_read_on_from_its_oldest_record(server_here, monkeypatch):
    """Lambda's answer to `TrimmedDataAccessException`: on from TRIM_HORIZON, even for a LATEST mapping (whose
    own starting position would skip what the stream still keeps)."""
    assert ACCOUNT == DEFAULT_ACCOUNT_ID
    clock = [atomic_moto._now()]
    monkeypatch.setattr(atomic_moto, "_now", lambda: clock[0])
    world = World(server_here)
    backend = dynamodb_backends[ACCOUNT][REGION]
    table = backend.get_table(world.table_name)
    streams = dynamodbstreams_backends[ACCOUNT][REGION]
    function = Function()
    try:
        world.poll(function, starting_position="LATEST")
        deadline = time.monotonic() + 5
        while not any(i.stream_shard.table is table for i in list(streams.shard_iterators.values())):
            assert time.monotonic() < deadline, "the poller never asked for an iterator"
            time.sleep(0.01)
        world.put_job("a")
        function.wait_for(lambda batches: batches == [["a"]], seconds=5)
        with atomic_moto._lock:  # the poller's next read waits, and so finds its records past the retention
            backend.put_item(world.table_name, job_item("b"))
            backend.put_item(world.table_name, job_item("c"))
            clock[0] += atomic_moto.STREAM_RETENTION_SECONDS + 1
            backend.put_item(world.table_name, job_item("d"))
        function.wait_for(lambda batches: len(batches) > 1, seconds=5)
        time.sleep(0.2)
    finally:
        world.stop()
    assert function.batches == [["a"], ["d"]]


def test_a_ttl_deletion_reaches_the_function_with_lambdas_user_identity(world: World) -> None:
    """GetRecords names the TTL service principal `Type`/`PrincipalId`; Lambda's event, `type`/`principalId`."""
    poller = StreamPoller(world.mapping(), lambda event: InvokeResult(True, b""), endpoint=world.server.endpoint)
    record = {
        "eventID": "1",
        "eventName": "REMOVE",
        "dynamodb": {"Keys": {"pk": {"S": "RATE#u"}, "sk": {"S": "MINUTE#1"}}, "SequenceNumber": "7"},
        "userIdentity": {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"},
    }
    event = poller._event_record(record)
    assert event["userIdentity"] == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    written = {key: value for key, value in record.items() if key != "userIdentity"}
    assert "userIdentity" not in poller._event_record(written), "a write by a caller names no identity"

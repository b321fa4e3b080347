"""Lambda's event source mapping for a DynamoDB stream, run locally against moto's Streams API.

Each `AWS::Lambda::EventSourceMapping` of the synthesized templates becomes a `StreamPoller`, configured from
the template alone (`EventSourceMapping.from_template`): its function, its stream, its filters, batch size,
retries, split on error, partial batch responses, maximum record age and on-failure destination. As in
Lambda, the poller reads with the function's own role (its requests are signed as the function, so the IAM
gate checks `dynamodb:ListStreams`, `DescribeStream`, `GetShardIterator`, `GetRecords` and `sqs:SendMessage`
against the synthesized role), and, per shard and in order:

- reads the shard (`GetRecords`, about four times a second, as Lambda polls a DynamoDB stream), drops the
  records no filter accepts (Lambda counts them as processed), and cuts the rest into batches;
- invokes the function synchronously with the real event (`{"Records": [...]}`: `eventID`, `eventName`,
  `eventVersion`, `eventSource`, `awsRegion`, `dynamodb` with `Keys`, `NewImage`, `SequenceNumber`,
  `SizeBytes`, `StreamViewType`, and `eventSourceARN`), and waits for it, as the shard waits in Lambda;
- on `batchItemFailures` (with `ReportBatchItemFailures`) retries from the first failed record; on a
  function error splits the batch in two when `BisectBatchOnFunctionError` is on (a split consumes no
  retry) or retries it whole; after `MaximumRetryAttempts` retries, or once a record is older than
  `MaximumRecordAgeInSeconds`, sends Lambda's on-failure record (which names the shard and the sequence
  numbers, not the records) to the SQS queue of `DestinationConfig.OnFailure`, and moves on.

Not emulated: Kinesis, SQS or Kafka sources, tumbling windows, more than one batch in flight per shard
(`ParallelizationFactor`), waiting to fill a batch (`MaximumBatchingWindowInSeconds`). Retries here wait
fractions of a second, not Lambda's backoff.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from local.aws_calls import ACCOUNT_ID, DEFAULT_REGION
from local.event_filter import accepts, parse_filter_criteria
from local.lambda_api import InvokeResult
from local.runtime_api import Throttled
from ops.stream_events import lambda_event_record

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.25  # Lambda polls each shard of a DynamoDB stream four times per second
DESCRIBE_SECONDS = 10.0  # how often the stream's shards are listed again (they split rarely)
DEFAULT_RETRY_DELAYS = (0.2, 0.5, 1.0)  # short, so a failing record does not hold the local shard for long
_RECORDS_PER_READ = 1000  # GetRecords' own maximum
_KNOWN_PROPERTIES = frozenset(
    {
        "FunctionName",
        "EventSourceArn",
        "FilterCriteria",
        "BatchSize",
        "MaximumRetryAttempts",
        "MaximumRecordAgeInSeconds",
        "BisectBatchOnFunctionError",
        "FunctionResponseTypes",
        "StartingPosition",
        "DestinationConfig",
        "Enabled",
        "Tags",
        "MaximumBatchingWindowInSeconds",  # accepted, not emulated: records go out as soon as they are read
        "ParallelizationFactor",  # accepted, not emulated: one batch per shard at a time
    }
)

Invoke = Callable[[dict[str, Any]], InvokeResult]


class MappingError(ValueError):
    """A mapping in the template that this emulation cannot run faithfully."""


@dataclass(frozen=True)
class EventSourceMapping:
    """One `AWS::Lambda::EventSourceMapping`, its intrinsics resolved to local values."""

    logical_id: str
    function_name: str
    event_source_arn: str  # a DynamoDB stream ARN; its label may be `*` (the table's stream, whatever it is)
    filters: tuple[dict[str, Any], ...] = ()
    batch_size: int = 100
    maximum_retry_attempts: int = -1  # -1: until the record expires, as in Lambda
    maximum_record_age_seconds: int = -1
    bisect_batch_on_function_error: bool = False
    report_batch_item_failures: bool = False
    starting_position: str = "LATEST"
    on_failure_destination: str | None = None  # an SQS queue ARN
    enabled: bool = True

    @classmethod
    def from_template(
        cls, logical_id: str, properties: Mapping[str, Any], resolve: Callable[[Any], Any]
    ) -> EventSourceMapping:
        unknown = sorted(set(properties) - _KNOWN_PROPERTIES)
        if unknown:
            raise MappingError(f"{logical_id}: {unknown} not emulated locally")
        source = str(resolve(properties["EventSourceArn"]))
        if ":dynamodb:" not in source or "/stream/" not in source:
            raise MappingError(f"{logical_id}: only DynamoDB stream sources run locally, not {source}")
        destination = resolve((properties.get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination"))
        if destination is not None and not str(destination).startswith("arn:aws:sqs:"):
            raise MappingError(f"{logical_id}: only SQS on-failure destinations run locally, not {destination}")
        return cls(
            logical_id=logical_id,
            function_name=str(resolve(properties["FunctionName"])),
            event_source_arn=source,
            filters=parse_filter_criteria(properties.get("FilterCriteria")),
            batch_size=int(properties.get("BatchSize", 100)),
            maximum_retry_attempts=int(properties.get("MaximumRetryAttempts", -1)),
            maximum_record_age_seconds=int(properties.get("MaximumRecordAgeInSeconds", -1)),
            bisect_batch_on_function_error=bool(properties.get("BisectBatchOnFunctionError", False)),
            report_batch_item_failures="ReportBatchItemFailures" in properties.get("FunctionResponseTypes", []),
            starting_position=str(properties["StartingPosition"]),
            on_failure_destination=str(destination) if destination is not None else None,
            enabled=bool(properties.get("Enabled", True)),
        )

    @property
    def table_name(self) -> str:
        return self.event_source_arn.split(":table/", 1)[1].split("/stream/", 1)[0]

    def accepts(self, record: Mapping[str, Any]) -> bool:
        return accepts(self.filters, record)


@dataclass
class _Shard:
    shard_id: str
    parent: str | None
    iterator: str | None = None
    last_sequence: str | None = None
    closed: bool = False
    from_oldest: bool = False  # the stream trimmed the records after `last_sequence`: read from its oldest


@dataclass
class Outcome:
    """How one invocation of a batch ended: the index of the first record to retry (None: all done)."""

    retry_from: int | None
    function_error: bool = False


class StreamPoller:
    """Runs one mapping: a thread that reads the stream's shards and invokes the function with them."""

    def __init__(
        self,
        mapping: EventSourceMapping,
        invoke: Invoke,
        *,
        endpoint: str,
        region: str = DEFAULT_REGION,
        account: str = ACCOUNT_ID,
        poll_seconds: float = POLL_SECONDS,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.mapping = mapping
        self.invoke = invoke
        self.region = region
        self.account = account
        self.poll_seconds = poll_seconds
        self.retry_delays = tuple(retry_delays) or (0.0,)
        self.clock = clock
        # The mapping reads and dead-letters with the function's role: locally, its name is the access key.
        credentials = {
            "endpoint_url": endpoint,
            "region_name": region,
            "aws_access_key_id": mapping.function_name,
            "aws_secret_access_key": "local",
            "config": Config(retries={"mode": "standard", "total_max_attempts": 3}, read_timeout=10),
        }
        self._streams = boto3.client("dynamodbstreams", **credentials)
        self._sqs = boto3.client("sqs", **credentials)
        self._queue_url: str | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.stream_arn: str | None = None

    @property
    def function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.mapping.function_name}"

    def start(self) -> StreamPoller:
        self._thread = threading.Thread(target=self._run, name=f"esm-{self.mapping.function_name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop reading; a batch still in its function is abandoned, as a shard is when a mapping goes."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # --- reading the stream ------------------------------------------------------------------------------

    def _run(self) -> None:
        shards: dict[str, _Shard] = {}
        described = float("-inf")
        while not self._stopping.is_set():
            try:
                if self.stream_arn is None:
                    self.stream_arn = self._find_stream()
                if self.stream_arn is not None and time.monotonic() - described > DESCRIBE_SECONDS:
                    self._discover(self.stream_arn, shards)
                    described = time.monotonic()
                read = any([self._poll(shard) for shard in self._readable(shards)])
            except (BotoCoreError, ClientError) as exc:
                logger.warning("%s: reading the stream failed: %s", self.mapping.logical_id, exc)
                read = False
            except Exception:  # the poller outlives any one batch, as Lambda's does
                logger.exception("%s: polling failed", self.mapping.logical_id)
                read = False
            if not read:
                self._stopping.wait(self.poll_seconds)

    def _find_stream(self) -> str | None:
        """The table's current stream that the mapping's ARN names (its label may be a wildcard)."""
        listed = self._streams.list_streams(TableName=self.mapping.table_name)["Streams"]
        found = [s["StreamArn"] for s in listed if fnmatch.fnmatchcase(s["StreamArn"], self.mapping.event_source_arn)]
        return found[-1] if found else None

    def _discover(self, stream_arn: str, shards: dict[str, _Shard]) -> None:
        description = self._streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]
        for shard in description["Shards"]:
            if shard["ShardId"] not in shards:
                shards[shard["ShardId"]] = _Shard(shard["ShardId"], shard.get("ParentShardId"))

    @staticmethod
    def _readable(shards: Mapping[str, _Shard]) -> list[_Shard]:
        """Open shards whose parent is read to its end (or no longer listed): a key's records stay in order."""
        return [s for s in shards.values() if not s.closed and (s.parent not in shards or shards[s.parent].closed)]

    def _poll(self, shard: _Shard) -> bool:
        try:
            if shard.iterator is None:
                shard.iterator = self._iterator(shard)
            response = self._streams.get_records(ShardIterator=shard.iterator, Limit=_RECORDS_PER_READ)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "ExpiredIteratorException":
                shard.iterator = None  # the next one starts after the last record handed over
                return False
            if code != "TrimmedDataAccessException":
                raise
            # Past the stream's retention: Lambda goes on from the oldest record kept, the ones between are lost.
            logger.warning(
                "%s: %s was trimmed past the last record read; reading on from its oldest",
                self.mapping.logical_id,
                shard.shard_id,
            )
            shard.iterator, shard.last_sequence, shard.from_oldest = None, None, True
            return False
        shard.iterator = response.get("NextShardIterator")
        shard.closed = shard.iterator is None
        records = response.get("Records", [])
        if not records:
            return False
        events = [self._event_record(record) for record in records]
        accepted = [event for event in events if self.mapping.accepts(event)]
        size = max(1, self.mapping.batch_size)
        for start in range(0, len(accepted), size):
            if self._stopping.is_set():
                return True
            self._deliver(shard.shard_id, accepted[start : start + size], retries=0)
        shard.last_sequence = records[-1]["dynamodb"]["SequenceNumber"]
        return True

    def _iterator(self, shard: _Shard) -> str:
        request = {"StreamArn": self.stream_arn, "ShardId": shard.shard_id}
        if shard.last_sequence is not None:
            request |= {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": shard.last_sequence}
        else:
            request["ShardIteratorType"] = "TRIM_HORIZON" if shard.from_oldest else self.mapping.starting_position
        return str(self._streams.get_shard_iterator(**request)["ShardIterator"])

    def _event_record(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """A `GetRecords` record as Lambda hands it to the function (the same conversion a redrive uses)."""
        return lambda_event_record(record, region=self.region, stream_arn=self.stream_arn)

    # --- invoking, retrying, dead-lettering ---------------------------------------------------------------

    def _deliver(self, shard_id: str, batch: list[dict[str, Any]], retries: int) -> None:
        """Invoke until the batch is done, split it on a function error, or give up on what keeps failing."""
        pending, invocations, outcome = batch, 0, Outcome(None)
        while pending and not self._stopping.is_set():
            if self._too_old(pending):
                self._dead_letter(shard_id, pending, "MaximumRecordAgeExceeded", invocations, outcome)
                return
            try:
                result = self._invoke(pending)
            except Throttled:
                # Lambda retries a throttled batch until its records expire, using no retry attempt
                self._stopping.wait(self.retry_delays[0])
                continue
            outcome = self._outcome(result, pending)
            invocations += 1
            if outcome.retry_from is None:
                return
            if outcome.function_error and self.mapping.bisect_batch_on_function_error and len(pending) > 1:
                half = len(pending) // 2
                self._deliver(shard_id, pending[:half], retries)  # a split consumes no retry
                self._deliver(shard_id, pending[half:], retries)
                return
            pending = pending[outcome.retry_from :]
            retries += 1
            if 0 <= self.mapping.maximum_retry_attempts < retries:
                self._dead_letter(shard_id, pending, "RetryAttemptsExhausted", invocations, outcome)
                return
            self._stopping.wait(self.retry_delays[min(retries, len(self.retry_delays)) - 1])

    def _invoke(self, batch: list[dict[str, Any]]) -> InvokeResult:
        result = self.invoke({"Records": batch})
        if not result.succeeded:
            logger.warning(
                "%s: %s failed on %d records (%s)",
                self.mapping.logical_id,
                self.mapping.function_name,
                len(batch),
                result.error_type or "error",
            )
        return result

    def _outcome(self, result: InvokeResult, batch: list[dict[str, Any]]) -> Outcome:
        """Lambda's reading of a response: an error fails the batch; with `ReportBatchItemFailures`, the
        listed sequence numbers fail from the lowest on, and an identifier that is not in the batch fails
        all of it; anything else (no list, an empty one) is a success."""
        if not result.succeeded:
            return Outcome(0, function_error=True)
        if not self.mapping.report_batch_item_failures:
            return Outcome(None)
        try:
            answer = json.loads(result.payload or b"null")
        except ValueError:
            return Outcome(None)
        failures = answer.get("batchItemFailures") if isinstance(answer, dict) else None
        if not failures:
            return Outcome(None)
        positions = {record["dynamodb"]["SequenceNumber"]: index for index, record in enumerate(batch)}
        identifiers = [f.get("itemIdentifier") if isinstance(f, dict) else None for f in failures]
        if not all(isinstance(i, str) and i in positions for i in identifiers):
            return Outcome(0)
        return Outcome(min(positions[i] for i in identifiers))

    def _too_old(self, batch: list[dict[str, Any]]) -> bool:
        limit = self.mapping.maximum_record_age_seconds
        created = batch[0]["dynamodb"].get("ApproximateCreationDateTime")
        return limit >= 0 and isinstance(created, int | float) and self.clock() - created > limit

    def _dead_letter(
        self, shard_id: str, batch: list[dict[str, Any]], condition: str, invocations: int, outcome: Outcome
    ) -> None:
        record = self.on_failure_record(shard_id, batch, condition, invocations, outcome)
        destination = self.mapping.on_failure_destination
        info = record["DDBStreamBatchInfo"]
        where = f"records {info['startSequenceNumber']}..{info['endSequenceNumber']} ({condition})"
        if destination is None:
            logger.error("%s: %s discarded: no on-failure destination", self.mapping.logical_id, where)
            return
        logger.error("%s: %s described in %s", self.mapping.logical_id, where, destination)
        try:
            self._sqs.send_message(QueueUrl=self._queue(destination), MessageBody=json.dumps(record))
        except (BotoCoreError, ClientError):
            logger.exception("%s: %s could not be sent to %s", self.mapping.logical_id, where, destination)

    def on_failure_record(
        self, shard_id: str, batch: list[dict[str, Any]], condition: str, invocations: int, outcome: Outcome
    ) -> dict[str, Any]:
        """What Lambda sends to a stream mapping's on-failure destination: the batch's place in the stream."""
        record: dict[str, Any] = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.function_arn,
                "condition": condition,
                "approximateInvokeCount": invocations,
            },
        }
        if invocations:
            response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
            if outcome.function_error:
                response["functionError"] = "Unhandled"
            record["responseContext"] = response
        record |= {
            "version": "1.0",
            "timestamp": _iso(self.clock(), milliseconds=True),
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(batch[0]["dynamodb"].get("ApproximateCreationDateTime")),
                "approximateArrivalOfLastRecord": _iso(batch[-1]["dynamodb"].get("ApproximateCreationDateTime")),
                "batchSize": len(batch),
                "streamArn": self.stream_arn,
            },
        }
        return record

    def _queue(self, arn: str) -> str:
        """The destination queue's URL, asked the way any SQS client would (its name and owner)."""
        if self._queue_url is None:
            _, _, _, _, owner, name = arn.split(":", 5)
            self._queue_url = self._sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=owner)["QueueUrl"]
        return self._queue_url


def _iso(epoch: Any, *, milliseconds: bool = False) -> str | None:
    if not isinstance(epoch, int | float):
        return None
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds" if milliseconds else "seconds").replace("+00:00", "Z")

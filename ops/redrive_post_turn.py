"""Redrive the post-turn work that ended in its dead-letter queue, once whatever made it fail is fixed.

    python -m ops.redrive_post_turn --dry-run     # what would be redriven, changing nothing
    python -m ops.redrive_post_turn               # redrive, deleting each dead letter once its work is done

The table's stream invokes `coach-conversation-post-turn` through an event source mapping; a batch that keeps
failing is described in the queue `<function>-dlq` (`DDBStreamBatchInfo`: stream, shard, first and last
sequence numbers, batch size), not stored there. For each such message this tool reads the batch's records
back from the stream (which keeps them 24 hours), keeps those the mapping's filter sends to the function (the
catalog's `filter_pattern`, which the template's `FilterCriteria` are made from), invokes the function
synchronously with them as the mapping does (`{"Records": [...]}`), and deletes the message only when the
function succeeded for every record. A message whose batch cannot be read whole, or whose work fails again,
is kept and visible again at the end. The jobs are idempotent, so redriving work that partly landed is safe.

boto3 only, with the usual configuration (`AWS_PROFILE`, `AWS_REGION`, ...); `AWS_ENDPOINT_URL_*` points it at
the local stack. The caller needs `sqs:ReceiveMessage`, `sqs:DeleteMessage`, `sqs:ChangeMessageVisibility` and
`sqs:GetQueueUrl` on the queue, `dynamodb:GetShardIterator` and `dynamodb:GetRecords` on the table's stream,
and `lambda:InvokeFunction` on the function.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from functions.catalog import COACH_CONVERSATION_POST_TURN, FunctionDefinition
from local.event_filter import accepts
from ops.stream_events import BatchUnreadable, lambda_event_record, read_batch

DEFAULT_NAME_PREFIX = "coach-stream"  # infra/config.py's default `namePrefix`
# Long enough for the synchronous invoke (the function's timeout) before the message shows up again.
VISIBILITY_MARGIN_SECONDS = 60
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, read_timeout=900, connect_timeout=5)

Print = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    """What a redrive needs of one stream consumer, all from the catalog and the stack's naming rules."""

    function_name: str
    queue_name: str
    filters: tuple[dict[str, Any], ...]
    timeout_seconds: int

    @classmethod
    def of(cls, definition: FunctionDefinition, name_prefix: str) -> Target:
        if definition.stream_source is None:
            raise ValueError(f"{definition.name} is not invoked by the table's stream")
        function_name = f"{name_prefix}-{definition.name}"
        return cls(
            function_name=function_name,
            queue_name=f"{function_name}-dlq",  # ApiStack.dead_letter_queue_name
            filters=(definition.stream_source.filter_pattern(),),
            timeout_seconds=definition.timeout_seconds,
        )


@dataclass
class Outcome:
    redriven: int = 0
    kept: int = 0
    skipped: int = 0
    lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.kept == 0


@dataclass
class Redriver:
    target: Target
    sqs: Any
    streams: Any
    lambda_: Any
    region: str
    dry_run: bool = False
    say: Print = print

    def run(self, max_messages: int | None = None) -> Outcome:
        outcome = Outcome()
        queue_url = self.sqs.get_queue_url(QueueName=self.target.queue_name)["QueueUrl"]
        held: list[str] = []  # receipt handles of messages kept: visible again at the end
        try:
            for message in self._messages(queue_url, max_messages):
                deleted = self._handle(queue_url, message, outcome)
                if not deleted:
                    held.append(message["ReceiptHandle"])
        finally:
            for handle in held:
                self.sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=handle, VisibilityTimeout=0)
        verb = "would redrive" if self.dry_run else "redriven"
        self.say(f"{self.target.queue_name}: {outcome.redriven} {verb}, {outcome.kept} kept, {outcome.skipped} skipped")
        return outcome

    def _messages(self, queue_url: str, max_messages: int | None) -> Iterator[dict[str, Any]]:
        """Each message once: a received message stays invisible until this run ends or deletes it."""
        seen: set[str] = set()
        while max_messages is None or len(seen) < max_messages:
            wanted = 10 if max_messages is None else min(10, max_messages - len(seen))
            received = self.sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=wanted,
                WaitTimeSeconds=1,
                VisibilityTimeout=self.target.timeout_seconds + VISIBILITY_MARGIN_SECONDS,
            ).get("Messages", [])
            fresh = [m for m in received if m["MessageId"] not in seen]
            if not fresh:
                return
            for message in fresh:
                seen.add(message["MessageId"])
                yield message

    def _handle(self, queue_url: str, message: Mapping[str, Any], outcome: Outcome) -> bool:
        """Redrive one dead letter; True when it was deleted."""
        mid = message["MessageId"]
        info = _batch_info(message.get("Body", ""))
        if info is None:
            outcome.skipped += 1
            self._line(outcome, f"skipped  {mid}: not a stream batch description; kept")
            return False
        where = f"{info['shardId']} {info['startSequenceNumber']}..{info['endSequenceNumber']}"
        try:
            records = self._records(info)
        except (BatchUnreadable, ClientError, BotoCoreError) as exc:
            outcome.kept += 1
            self._line(outcome, f"kept     {mid} ({where}): cannot read the batch: {exc}")
            return False
        expected = int(info.get("batchSize") or len(records))
        if len(records) != expected:
            outcome.kept += 1
            self._line(outcome, f"kept     {mid} ({where}): found {len(records)} of its {expected} records")
            return False
        if self.dry_run:
            outcome.redriven += 1
            self._line(outcome, f"dry run  {mid} ({where}): would invoke {self.target.function_name} with {expected}")
            return False
        failure = self._invoke(records)
        if failure:
            outcome.kept += 1
            self._line(outcome, f"kept     {mid} ({where}): {failure}")
            return False
        self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        outcome.redriven += 1
        self._line(outcome, f"redriven {mid} ({where}): {expected} records done; message deleted")
        return True

    def _records(self, info: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The batch's records, as the mapping sent them: read back, filtered, converted."""
        converted = [
            lambda_event_record(record, region=self.region, stream_arn=info["streamArn"])
            for record in read_batch(self.streams, info)
        ]
        return [record for record in converted if accepts(self.target.filters, record)]

    def _invoke(self, records: Sequence[Mapping[str, Any]]) -> str | None:
        """Invoke the function with the batch as its mapping does; a description of the failure, or None."""
        try:
            response = self.lambda_.invoke(
                FunctionName=self.target.function_name,
                InvocationType="RequestResponse",
                Payload=json.dumps({"Records": list(records)}).encode("utf-8"),
            )
        except (ClientError, BotoCoreError) as exc:
            return f"invoke failed: {exc}"
        payload = response["Payload"].read()
        if response.get("FunctionError"):
            return f"the function failed ({response['FunctionError']}): {payload[:300].decode('utf-8', 'replace')}"
        try:
            answer = json.loads(payload or b"null")
        except ValueError:
            answer = None
        failures = answer.get("batchItemFailures") if isinstance(answer, dict) else None
        if failures:
            failed = ", ".join(str(f.get("itemIdentifier")) for f in failures if isinstance(f, dict))
            return f"the function failed again for records {failed}"
        return None

    def _line(self, outcome: Outcome, text: str) -> None:
        outcome.lines.append(text)
        self.say(text)


def _batch_info(body: str) -> dict[str, Any] | None:
    try:
        info = json.loads(body).get("DDBStreamBatchInfo")
    except (ValueError, AttributeError):
        return None
    needed = ("streamArn", "shardId", "startSequenceNumber", "endSequenceNumber")
    return info if isinstance(info, dict) and all(info.get(k) for k in needed) else None


def main(argv: Sequence[str] | None = None, say: Print = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.redrive_post_turn", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="read and report, invoke nothing, delete nothing")
    parser.add_argument("--name-prefix", default=DEFAULT_NAME_PREFIX, help="the stack's namePrefix")
    parser.add_argument("--max-messages", type=int, default=None, help="stop after this many dead letters")
    parser.add_argument("--region", default=None, help="default: the usual AWS configuration")
    args = parser.parse_args(argv)
    session = boto3.session.Session(region_name=args.region)
    region = session.region_name or "us-east-1"
    redriver = Redriver(
        target=Target.of(COACH_CONVERSATION_POST_TURN, args.name_prefix),
        sqs=session.client("sqs", config=_CLIENT_CONFIG),
        streams=session.client("dynamodbstreams", config=_CLIENT_CONFIG),
        lambda_=session.client("lambda", config=_CLIENT_CONFIG),
        region=region,
        dry_run=args.dry_run,
        say=say,
    )
    return 0 if redriver.run(args.max_messages).ok else 1


if __name__ == "__main__":
    sys.exit(main())

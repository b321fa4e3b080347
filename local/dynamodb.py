"""A local DynamoDB: moto in server mode in its own process (its writes made atomic, as DynamoDB's
are: `local/atomic_moto.py`), tables made from the CDK's definition. The same server answers DynamoDB
Streams and SQS on the same endpoint (the stream mappings' reads and their dead-letter queues)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3

from local.processes import die_with_parent, free_port
from shared.store.schema import COACH_TABLE, TableDefinition

_LOCAL_CREDENTIALS = {
    "region_name": "us-east-1",
    "aws_access_key_id": "local",
    "aws_secret_access_key": "local",  # moto accepts any credentials
}


class LocalDynamoDb:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0, environment: dict[str, str] | None = None) -> LocalDynamoDb:
        """`environment` adds to the server's own (the IAM gate's files)."""
        self._process = subprocess.Popen(
            [sys.executable, "-m", "local.atomic_moto", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            cwd=Path(__file__).resolve().parent.parent,
            env={**os.environ, **(environment or {})},
        )
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self._process.poll() is not None:
                    raise RuntimeError("moto server exited at start") from None
                time.sleep(0.05)
        raise TimeoutError("moto server did not start")

    def client(self, service: str = "dynamodb") -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, **_LOCAL_CREDENTIALS)

    def resource(self) -> Any:
        return boto3.resource("dynamodb", endpoint_url=self.endpoint, **_LOCAL_CREDENTIALS)

    def create_bucket(self, bucket: str) -> None:
        """moto's server answers S3 too: the uploads bucket lives beside the table."""
        self.client("s3").create_bucket(Bucket=bucket)

    def create_queue(self, name: str, attributes: dict[str, str] | None = None) -> str:
        """An SQS queue (a stream mapping's dead-letter queue); returns its URL."""
        return str(self.client("sqs").create_queue(QueueName=name, Attributes=attributes or {})["QueueUrl"])

    def create_table(
        self, table_name: str, definition: TableDefinition = COACH_TABLE, stream_view_type: str | None = None
    ) -> None:
        """The table from its definition and, when the template gives it one, its stream."""
        client = self.client()
        request = definition.create_table_request(table_name)
        if stream_view_type:
            request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream_view_type}
        client.create_table(**request)
        client.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": definition.ttl_attribute},
        )

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

"""Jobs as asynchronous Lambda invocations (`InvocationType=Event`).

Once Lambda accepts the event (202) it is queued durably and retried twice on failure, then sent
to the function's on-failure destination; the consumers are idempotent, so retries are harmless.
The endpoint is never set in code: the local stack sets `AWS_ENDPOINT_URL_LAMBDA`.
"""

from __future__ import annotations

import json
import logging
from functools import cached_property
from typing import Any

from shared.aws_clients import LAMBDA_ASYNC, make_client
from shared.jobs.port import JobQueue

logger = logging.getLogger(__name__)

_CONFIG = LAMBDA_ASYNC.botocore_config()


class LambdaAsyncJobQueue(JobQueue):
    def __init__(self, function_name: str) -> None:
        self.function_name = function_name

    @cached_property
    def _client(self) -> Any:
        return make_client("lambda", _CONFIG)

    def submit(self, job: dict[str, Any]) -> None:
        response = self._client.invoke(
            FunctionName=self.function_name,
            InvocationType="Event",
            Payload=json.dumps(job, separators=(",", ":")).encode("utf-8"),
        )
        if response.get("StatusCode") != 202:
            raise RuntimeError(f"async invoke of {self.function_name} answered {response.get('StatusCode')}")

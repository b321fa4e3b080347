"""The context object the stock runtime would have passed, rebuilt from the /next headers.

Powertools' `inject_lambda_context` reads these attributes; `get_remaining_time_in_millis`
follows the invocation's deadline so handlers can keep their own time budget.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LambdaContext:
    aws_request_id: str
    deadline_ms: int
    invoked_function_arn: str
    function_name: str
    function_version: str
    memory_limit_in_mb: int
    log_group_name: str
    log_stream_name: str
    client_context: Any = None
    identity: Any = None
    tenant_id: str | None = None

    @classmethod
    def for_invocation(
        cls,
        request_id: str,
        deadline_ms: int,
        function_arn: str,
        client_context: Any = None,
        identity: Any = None,
        tenant_id: str | None = None,
    ) -> LambdaContext:
        env = os.environ
        return cls(
            aws_request_id=request_id,
            deadline_ms=deadline_ms,
            invoked_function_arn=function_arn,
            function_name=env.get("AWS_LAMBDA_FUNCTION_NAME", ""),
            function_version=env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            memory_limit_in_mb=int(env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")),
            log_group_name=env.get("AWS_LAMBDA_LOG_GROUP_NAME", ""),
            log_stream_name=env.get("AWS_LAMBDA_LOG_STREAM_NAME", ""),
            client_context=client_context,
            identity=identity,
            tenant_id=tenant_id,
        )

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))

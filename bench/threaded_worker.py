"""A worker that serves `AWS_LAMBDA_MAX_CONCURRENCY` invocations in threads of one process, for the
Managed Instances bench only: it shows what threads would save against the adapter's forked workers.

It is not the adapter's way, and not safe to ship: the threads share the handler's globals, the
process-wide `_X_AMZN_TRACE_ID`, Powertools' Logger keys and metric set, and boto3 resources, which
boto3 documents as not thread safe. The bench counts its errors like any other run's.
"""

from __future__ import annotations

import os
import sys
import threading

if __name__ == "__main__":
    sys.path[0] = os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())
    from shared.runtime import log_records
    from shared.runtime.bootstrap import load_handler, prepare_sys_path, serve
    from shared.runtime.client import RuntimeApiClient
    from shared.runtime.worker_pool import max_concurrency

    prepare_sys_path()
    log_records.install(os.environ)
    handler = load_handler(os.environ["_HANDLER"])
    prepare = getattr(handler, "prepare_workers", None)
    if callable(prepare):
        prepare()
    address = os.environ["AWS_LAMBDA_RUNTIME_API"]
    threads = [
        threading.Thread(target=serve, args=(RuntimeApiClient(address), handler), daemon=True)
        for _ in range(max_concurrency(os.environ))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

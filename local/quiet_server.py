"""What the local doubles' HTTP servers share: each write sent at once (`LoopbackHTTPServer`), serving on a
thread of their own, and a client that goes away taken as routine, not an error to print."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from local.processes import LoopbackHTTPServer

logger = logging.getLogger(__name__)


class QuietServer(LoopbackHTTPServer):
    """A threading HTTP server that logs a client resetting or closing its connection (a timeout, an
    abandoned stream, a function killed mid-call) at debug level, and anything else as its base does.

    Its answers leave in one go: a response whose body is written after its headers would otherwise wait
    for the client's delayed ACK (the AppConfig double's configuration took 44 ms to arrive)."""

    _serving: threading.Thread | None = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            logger.debug("client %s went away", client_address)
            return
        super().handle_error(request, client_address)

    def serve_in_background(self, name: str) -> None:
        """Serves on a daemon thread named `name` until `close`."""
        self._serving = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )
        self._serving.start()

    def close(self) -> None:
        """Stops serving, if it ever started (a stack whose start failed closes what it made), and releases
        the port."""
        if self._serving is not None:
            self.shutdown()
        self.server_close()

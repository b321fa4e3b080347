"""What the local doubles' HTTP servers share: a client that goes away is routine, not an error to print."""

from __future__ import annotations

import logging
import sys
from http.server import ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)


class QuietServer(ThreadingHTTPServer):
    """A threading HTTP server that logs a client resetting or closing its connection (a timeout, an
    abandoned stream, a function killed mid-call) at debug level, and anything else as its base does."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            logger.debug("client %s went away", client_address)
            return
        super().handle_error(request, client_address)

"""The streaming adapter: one handler, streamed through the Runtime API or returned buffered."""

from shared.streaming.handler import streaming_handler
from shared.streaming.response import JsonResponse, StreamFailure, StreamingResponse

__all__ = ["JsonResponse", "StreamFailure", "StreamingResponse", "streaming_handler"]

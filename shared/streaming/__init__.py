"""The streaming adapter: one handler, streamed through the Runtime API or returned buffered."""

from shared.streaming.handler import streaming_handler
from shared.streaming.response import JsonResponse, StreamingResponse

__all__ = ["JsonResponse", "StreamingResponse", "streaming_handler"]

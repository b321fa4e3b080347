"""In-memory adapters of the ports the turn pipelines use, faithful to the DynamoDB adapters.

`tests/unit/test_store_contract.py` runs the same behavioural tests against these and against the
DynamoDB adapters on moto; that is what lets the pipeline tests trust them without a table.
"""

from tests.fakes.coaches import InMemoryCoachRepository
from tests.fakes.concurrency import race
from tests.fakes.conversations import InMemoryConversationRepository
from tests.fakes.creator_sessions import InMemoryCreatorSessionRepository
from tests.fakes.images import InMemoryImageSource
from tests.fakes.jobs import RecordingJobQueue
from tests.fakes.memories import InMemoryMemoryRepository, InMemoryWorkoutRepository
from tests.fakes.metrics import RecordedMetrics
from tests.fakes.model import StreamingModel, StreamScript, interrupted_after, reply, stalls_after, unavailable
from tests.fakes.rate_limit import InMemoryRateLimiter

__all__ = [
    "InMemoryCoachRepository",
    "InMemoryConversationRepository",
    "InMemoryCreatorSessionRepository",
    "InMemoryImageSource",
    "InMemoryMemoryRepository",
    "InMemoryRateLimiter",
    "InMemoryWorkoutRepository",
    "RecordedMetrics",
    "RecordingJobQueue",
    "StreamScript",
    "StreamingModel",
    "interrupted_after",
    "race",
    "reply",
    "stalls_after",
    "unavailable",
]

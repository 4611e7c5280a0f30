"""Message buses for live bars: in memory (the default), Redis (`pip install 'colfill[redis]'`) and Kafka
(`pip install 'colfill[kafka]'`, with `KafkaToRedisBridge` to carry Kafka's bars on to Redis).

See `colfill.bus.base` for the message every bus publishes and the names it publishes it under.
"""

from colfill.bus.base import (
    MESSAGE_VERSION,
    STATUS_CHANNEL,
    MessageBus,
    bar_channel,
    bar_message,
    bar_stream,
    open_bus,
    status_key,
)
from colfill.bus.memory import InMemoryMessageBus

__all__ = [
    "MESSAGE_VERSION",
    "STATUS_CHANNEL",
    "InMemoryMessageBus",
    "MessageBus",
    "bar_channel",
    "bar_message",
    "bar_stream",
    "open_bus",
    "status_key",
]

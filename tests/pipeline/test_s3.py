"""Flat files through s3fs against moto's standalone S3 server, and a server that refuses (403)."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import s3fs

from colfill.errors import InvalidArgument, SourceError
from colfill.sources.flatfiles import FlatFiles

from .conftest import END, START, backfill, files, stored

SECRET = "s3-secret-never-printed-42"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("moto server did not start")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLFILL_S3_ENDPOINT", moto_endpoint)
    monkeypatch.setenv("COLFILL_S3_KEY_ID", "testing")
    monkeypatch.setenv("COLFILL_S3_SECRET", SECRET)
    return moto_endpoint


def test_backfill_from_s3_equals_local(s3_env: str, sample_root: Path, tmp_path: Path) -> None:
    fs = s3fs.S3FileSystem(key="testing", secret=SECRET, endpoint_url=s3_env, skip_instance_cache=True)
    if not fs.exists("flatfiles"):
        fs.mkdir("flatfiles")
    for p in files(sample_root, "bars_1d"):
        fs.put_file(str(p), f"flatfiles/{p.relative_to(sample_root).as_posix()}")
    listed = FlatFiles("s3://flatfiles").list("bars_1d", START, END)
    assert len(listed) == len(files(sample_root, "bars_1d"))
    assert all(o.etag and not o.etag.startswith("mtime:") for o in listed)
    backfill("s3://flatfiles", tmp_path / "s3", tables=("bars_1d",))  # type: ignore[arg-type]
    backfill(sample_root, tmp_path / "local", tables=("bars_1d",))
    assert stored(tmp_path / "s3", "bars_1d").equals(stored(tmp_path / "local", "bars_1d"))


def test_missing_bucket(s3_env: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="s3://no-such-bucket-here/us_stocks_sip/day_aggs_v1/") as err:
        FlatFiles("s3://no-such-bucket-here").list("bars_1d", START, END)
    assert SECRET not in str(err.value)


class _Refuse(http.server.BaseHTTPRequestHandler):
    def _deny(self) -> None:
        body = b'<?xml version="1.0"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>'
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_POST = _deny

    def log_message(self, *args: object) -> None:
        pass


def test_403_explains_s3_keys_and_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("COLFILL_S3_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.setenv("COLFILL_S3_KEY_ID", "AKIDEXAMPLE")
        monkeypatch.setenv("COLFILL_S3_SECRET", SECRET)
        with pytest.raises(SourceError) as err:
            FlatFiles("s3://flatfiles").list("bars_1d", START, END)
    finally:
        server.shutdown()
    text = str(err.value)
    assert "403" in text and "not the REST API key" in text and "paid plan" in text
    assert SECRET not in text

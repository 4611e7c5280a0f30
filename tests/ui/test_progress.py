"""The progress file of `colfill run` (colfill.progress): shape per the bus contract, atomic and throttled writes,
the run's record at the end, the Redis run status, and the resampler's exact OHLC aggregation."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import polars as pl
import pytest

from colfill.progress import ProgressFile, Tee, read_progress, read_runs
from colfill.ui.resample import choose_width, columnar, resample


def test_progress_file_shape_and_throttle(tmp_path: Path) -> None:
    seconds = [100.0]
    p = ProgressFile(tmp_path, interval=0.5, clock=lambda: seconds[0])
    p.start("bars_1m", 10)
    first = json.loads((tmp_path / "progress" / "run.json").read_text())
    assert first["kind"] == "run" and first["pid"] == os.getpid() and first["finished"] is False
    assert first["tables"]["bars_1m"] == {"done": 0, "total": 10, "rows": 0, "rows_per_s": 0.0, "eta_s": None}
    for _ in range(5):
        seconds[0] += 0.09
        p.advance("bars_1m", 100)
    throttled = json.loads((tmp_path / "progress" / "run.json").read_text())
    assert throttled["tables"]["bars_1m"]["done"] == 0  # 0.45 s after the last write: none of the five written
    seconds[0] += 0.1
    p.advance("bars_1m", 100)
    now = read_progress(tmp_path)
    assert now is not None and now["alive"] and not now["stale"]
    t = now["tables"]["bars_1m"]
    assert t["done"] == 6 and t["rows"] == 600 and t["rows_per_s"] > 0 and t["eta_s"] > 0
    p.finish()
    done = read_progress(tmp_path)
    assert done is not None and done["finished"] is True and done["tables"]["bars_1m"]["done"] == 6
    assert done["failed"] is True  # finished without a result: the run ended by an error
    assert not list((tmp_path / "progress").glob(".*tmp"))  # replaced atomically, no temp file left


def test_readers_never_see_half_a_file(tmp_path: Path) -> None:
    p = ProgressFile(tmp_path, interval=0.0)
    p.start("bars_1m", 100_000)
    stop = threading.Event()
    bad: list[str] = []

    def read() -> None:
        while not stop.is_set():
            text = (tmp_path / "progress" / "run.json").read_text()
            try:
                json.loads(text)
            except ValueError:
                bad.append(text)

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(2000):
        p.advance("bars_1m", 1)
    stop.set()
    reader.join()
    assert bad == []


def test_stale_progress_of_a_dead_process(tmp_path: Path) -> None:
    path = tmp_path / "progress" / "run.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"kind": "run", "tables": {}, "pid": 2**22 + 12345, "finished": False}))
    status = read_progress(tmp_path)
    assert status is not None and status["stale"] and not status["alive"]


def test_run_record_through_the_cli(tmp_path: Path) -> None:
    from tests.ui.conftest import colfill, sample_source

    src = sample_source(tmp_path / "src", "2024-01-02", "2024-01-05", tickers=3)
    proc = colfill("run", "--source", str(src), "--data-dir", str(tmp_path / "d"), "--start", "2024-01-02",
                   "--end", "2024-01-05")
    assert proc.returncode == 0, proc.stderr
    (run,) = read_runs(tmp_path / "d")
    assert run["ok"] and run["tables"]["bars_1m"]["staged"] == 4 and run["tables"]["bars_1d"]["files"] == 4
    status = read_progress(tmp_path / "d")
    assert status is not None and status["finished"] and status["tables"]["bars_1m"]["done"] == 4
    assert "failed" not in status


def test_tee_forwards_every_call(tmp_path: Path) -> None:
    class Rec:
        def __init__(self) -> None:
            self.calls: list[tuple[object, ...]] = []

        def start(self, table: str, days: int) -> None:
            self.calls.append(("start", table, days))

        def advance(self, table: str, rows: int, detail: str = "") -> None:
            self.calls.append(("advance", table, rows, detail))

        def note(self, message: str) -> None:
            self.calls.append(("note", message))

    a, b = Rec(), Rec()
    tee = Tee(a, b)
    tee.start("bars_1d", 3)
    tee.advance("bars_1d", 7, "x")
    tee.note("hi")
    assert a.calls == b.calls == [("start", "bars_1d", 3), ("advance", "bars_1d", 7, "x"), ("note", "hi")]


@pytest.mark.redis
def test_run_status_on_redis(tmp_path: Path, redis_url: str) -> None:
    import redis

    url = redis_url.rsplit("/", 1)[0] + "/9"  # a database of its own: status keys are per database
    client = redis.Redis.from_url(url)
    pubsub = client.pubsub()
    pubsub.subscribe("colfill:status")
    pubsub.get_message(timeout=1)
    p = ProgressFile(tmp_path, redis_url=url, interval=0.0)
    p.start("bars_1m", 2)
    p.advance("bars_1m", 10)
    status = json.loads(client.get("colfill:status:run"))
    assert status["kind"] == "run" and status["tables"]["bars_1m"]["done"] == 1 and "updated_ms" in status
    assert 0 < client.ttl("colfill:status:run") <= 60
    msg = None
    for _ in range(20):
        msg = pubsub.get_message(timeout=1)
        if msg and msg["type"] == "message":
            break
    assert msg is not None and json.loads(msg["data"])["name"] == "run"
    p.finish()
    assert json.loads(client.get("colfill:status:run"))["finished"] is True
    client.delete("colfill:status:run")
    # the installed command with --redis publishes the same
    from tests.ui.conftest import colfill, sample_source

    src = sample_source(tmp_path / "src", "2024-01-02", "2024-01-04", tickers=2)
    proc = colfill("run", "--source", str(src), "--data-dir", str(tmp_path / "d"), "--start", "2024-01-02",
                   "--end", "2024-01-04", "--redis", url)
    assert proc.returncode == 0, proc.stderr
    final = json.loads(client.get("colfill:status:run"))
    assert final["finished"] is True and final["tables"]["bars_1m"] == {**final["tables"]["bars_1m"], "done": 3,
                                                                         "total": 3}
    assert "pid" not in final and url not in json.dumps(final)
    client.delete("colfill:status:run")
    pubsub.close()
    client.close()


def test_resample_is_exact_ohlc() -> None:
    t0 = 1_704_205_800_000  # 2024-01-02 14:30 UTC
    frame = pl.DataFrame({"t": [t0 + i * 60_000 for i in range(10)],
                          "open": [float(i) for i in range(10)], "high": [10.0 + i for i in range(10)],
                          "low": [-1.0 - i for i in range(10)], "close": [0.5 + i for i in range(10)],
                          "volume": [1.0] * 10, "sma_20": [None, *[float(i) for i in range(9)]]})
    out = resample(frame, 5, "1m")
    assert out["t"].to_list() == [t0, t0 + 300_000]
    assert out["open"].to_list() == [0.0, 5.0] and out["high"].to_list() == [14.0, 19.0]
    assert out["low"].to_list() == [-5.0, -10.0] and out["close"].to_list() == [4.5, 9.5]
    assert out["volume"].to_list() == [5.0, 5.0] and out["sma_20"].to_list() == [3.0, 8.0]
    daily = resample(frame, "1d", "1m")
    assert daily.height == 1 and daily["volume"][0] == 10.0 and daily["high"][0] == 19.0
    assert choose_width(365 * 86_400_000, "1m", 1500) == "1d"
    assert choose_width(86_400_000, "1m", 1500) == 1
    assert columnar(pl.DataFrame({"x": [float("nan"), 1.0, float("inf")]})) == {"x": [None, 1.0, None]}

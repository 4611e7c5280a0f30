"""Polygon/Massive REST over the official client (`polygon-api-client`), with limits and faults handled by us.

The client (`RESTClient(api_key, base=...)`) builds the reference requests and follows `next_url`; bars are
read as raw JSON pages through the same client's pool and parsed into columns by Polars (`RestApi.bars`).
Every HTTP attempt goes through `LimitedPool`, the urllib3 pool we give the client, which is where colfill's
promises live:

- **Rate**: each attempt, retries included, holds a token of the `RateLimiter` until its answer is in. The client's own
  urllib3 retries are off (`retries=0`): they would resend below the limiter.
- **Faults**: a 429 waits `Retry-After` (else a backoff) and tries again; 5xx answers and dropped or timed-out
  connections are retried with jittered exponential backoff, `MAX_ATTEMPTS` in all, then a `TransientError`
  (exit 3: run again); 401 and 403 stop at once with what they mean (a bad key; a plan without this data).
  A host that cannot be connected to before it ever answered is `HostUnreachable` at the first failure.
- **Timeouts**: applied to every request (the client's own are not, in 1.16.3).
- **Secrets**: the key travels only in the Authorization header; messages name the URL path without it.

A malformed body raises `MalformedResponse` (the client would otherwise end a listing silently on a JSON
error), and the caller retries the whole listing.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from colfill.config import Secret, env
from colfill.config import api_key as configured_key
from colfill.errors import InvalidArgument, SourceError, SourceUnreachable, TransientError
from colfill.sources.ratelimit import DEFAULT_RATE, Rate, RateLimiter

if TYPE_CHECKING:
    import polars as pl

DEFAULT_REST_URL = "https://api.massive.com"
MAX_ATTEMPTS = 6
BACKOFF_BASE = 0.25  # seconds; attempt k waits up to BACKOFF_BASE * 2**k (full jitter), at most BACKOFF_MAX
BACKOFF_MAX = 20.0
RETRY_STATUSES = frozenset({413, 429, 499, 500, 502, 503, 504})
AGG_FIELDS = {"t": "int", "o": "float", "h": "float", "l": "float", "c": "float", "v": "float", "vw": "float",
              "n": "int"}  # an aggregate's JSON keys (grouped daily adds `T`, the ticker)


class HostUnreachable(TransientError):
    """The REST host could not be connected to on first contact: said at once, not after every retry (a run of
    flat files would otherwise wait ~10 s of backoff in phases 1-2 before saying the host is down)."""


class MalformedResponse(TransientError):
    """A response body that is not the JSON it should be (a truncated or garbled answer): worth another try."""


@dataclass(frozen=True)
class RestSettings:
    """Where and how to reach the REST API. `api_key` is a Secret: it never prints."""

    url: str = DEFAULT_REST_URL
    api_key: Secret | None = None
    rate: Rate = Rate.parse(DEFAULT_RATE)
    workers: int = 8
    connect_timeout: float = 10.0
    read_timeout: float = 60.0

    @classmethod
    def from_env(cls, url: str | None = None, api_key: str | None = None, rate: str | None = None,
                 workers: int | None = None) -> RestSettings:
        """Flags first, then COLFILL_REST_URL / POLYGON_API_KEY / MASSIVE_API_KEY / COLFILL_REST_RATE."""
        base = (url or env("COLFILL_REST_URL") or DEFAULT_REST_URL).rstrip("/")
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidArgument(f"--rest-url {base!r} is not an http(s) URL. Hint: e.g. {DEFAULT_REST_URL}")
        n = workers if workers is not None else 8
        if n < 1:
            raise InvalidArgument(f"--rest-workers {n} must be at least 1")
        return cls(url=base, api_key=configured_key(api_key),
                   rate=Rate.parse(rate or env("COLFILL_REST_RATE") or DEFAULT_RATE), workers=n)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to the backoff


def _refused(status: int, path: str, body: bytes) -> SourceUnreachable:
    text = body.decode("utf-8", "replace")[:300]
    if status == 401:
        return SourceUnreachable(f"the REST API refused the API key (401) for {path}: {text}. Hint: check "
                                 "POLYGON_API_KEY / MASSIVE_API_KEY (or --api-key): the REST key from the dashboard, "
                                 "not the S3 flat-files keys.")
    return SourceUnreachable(f"the REST API refused {path} (403: your plan does not include this data, or not this "
                             f"far back): {text}. Hint: check the plan's history and data in the dashboard.")


def _make_pool(settings: RestSettings, limiter: RateLimiter, headers: dict[str, str]) -> Any:
    import urllib3

    class LimitedPool(urllib3.PoolManager):
        """Every attempt through the limiter; retries, backoff and refusals as the module docstring says."""

        answered = False  # the host has answered once: a failed connection after that is retried

        def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> Any:  # type: ignore[override]
            kw["retries"] = False
            kw.setdefault("timeout", urllib3.Timeout(connect=settings.connect_timeout, read=settings.read_timeout))
            path = urlsplit(url).path
            last = ""
            for attempt in range(MAX_ATTEMPTS):
                try:
                    with limiter.slot():
                        resp = super().urlopen(method, url, redirect=redirect, **kw)
                except urllib3.exceptions.ConnectTimeoutError as exc:  # refused, unresolved, no answer to SYN
                    if not self.answered:
                        raise HostUnreachable(
                            f"the REST API at {settings.url} cannot be reached ({type(exc).__name__} on {path}). "
                            "Hint: check --rest-url/COLFILL_REST_URL and the network.") from None
                    last, wait = type(exc).__name__, None
                except (urllib3.exceptions.HTTPError, OSError) as exc:  # dropped, timed out
                    last, wait = type(exc).__name__, None
                else:
                    self.answered = True
                    if resp.status in (401, 403):
                        raise _refused(resp.status, path, resp.data)
                    if resp.status not in RETRY_STATUSES:
                        return resp
                    last = f"HTTP {resp.status}"
                    wait = _retry_after(resp.headers.get("Retry-After")) if resp.status == 429 else None
                if attempt + 1 < MAX_ATTEMPTS:
                    time.sleep(wait if wait is not None else
                               random.uniform(0, min(BACKOFF_MAX, BACKOFF_BASE * 2 ** attempt)))
            raise TransientError(f"the REST API at {settings.url} did not answer {path} after {MAX_ATTEMPTS} attempts "
                                 f"(last: {last}). Hint: check --rest-url/COLFILL_REST_URL; else a transient fault "
                                 "or throttling: run again, or lower --rate.")

    return LimitedPool(num_pools=4, maxsize=max(1, settings.workers), headers=headers, block=True)


class _StrictJson:
    """`json` for the client that raises MalformedResponse (not a ValueError, which the client swallows)."""

    @staticmethod
    def loads(text: str | bytes) -> Any:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise MalformedResponse(f"the REST API sent a malformed JSON body ({exc}). Hint: run again.") from None

    dumps = staticmethod(json.dumps)


class RestApi:
    """The official client, limited and made fault-tolerant (see the module docstring); thread-safe."""

    def __init__(self, settings: RestSettings) -> None:
        from polygon import RESTClient

        if settings.api_key is None:
            raise InvalidArgument("the REST API needs a key: set POLYGON_API_KEY or MASSIVE_API_KEY, or pass "
                                  "--api-key. Hint: the REST key from the Massive/Polygon dashboard.")
        self.settings = settings
        self.limiter = RateLimiter(settings.rate)
        self.client = RESTClient(settings.api_key.reveal(), base=settings.url, retries=0, pagination=True,
                                 custom_json=_StrictJson)
        self.client.client = _make_pool(settings, self.limiter, dict(self.client.headers))

    def __repr__(self) -> str:
        return f"RestApi({self.settings.url!r}, rate={self.settings.rate})"

    def _call(self, what: str, fn: Any, attempts: int = 3) -> Any:
        """`fn()`; a malformed page restarts it (at most `attempts` times), a refusal names `what`."""
        from polygon.exceptions import BadResponse

        for attempt in range(attempts):
            try:
                return fn()
            except MalformedResponse:
                if attempt + 1 == attempts:
                    raise
            except BadResponse as exc:
                raise SourceError(f"the REST API refused {what}: {str(exc)[:300]}") from None
        raise AssertionError("unreachable")

    def _pages(self, what: str, path: str, params: dict[str, Any], fields: dict[str, Any]) -> pl.DataFrame:
        """Every page of an aggregates answer as one frame of `fields`, parsed from the raw JSON by Polars (no Python
        object per bar: the client's own `Agg` objects made REST 4x slower than flat files). `next_url` is followed
        on our host only, so the key never travels elsewhere."""
        import polars as pl

        frames = []
        url = f"{self.settings.url}{path}?{urlencode(params)}"
        while url:
            resp = self.client.client.request("GET", url, headers=self.client.headers)
            if resp.status != 200:
                raise SourceError(f"the REST API refused {what} (HTTP {resp.status}): "
                                  f"{resp.data.decode('utf-8', 'replace')[:300]}")
            frame, next_url = _parse_page(resp.data, fields)
            frames.append(frame)
            nxt = urlsplit(next_url or "")
            url = f"{self.settings.url}{nxt.path}?{nxt.query}" if next_url else ""
        return pl.concat(frames) if len(frames) > 1 else frames[0]

    def bars(self, ticker: str, timespan: str, start: int | str, end: int | str) -> pl.DataFrame:
        """Every unadjusted bar of `ticker` in [start, end] (epoch ms or YYYY-MM-DD), ascending, in the flat files'
        schema, in pages of 50,000 (the fewest requests the API allows)."""
        import polars as pl

        path = f"/v2/aggs/ticker/{quote(ticker, safe='')}/range/1/{timespan}/{start}/{end}"
        frame = self._call(f"aggregates of {ticker!r} {start}..{end}", lambda: self._pages(
            f"aggregates of {ticker!r}", path, {"adjusted": "false", "sort": "asc", "limit": 50_000}, AGG_FIELDS))
        return _bars(frame.with_columns(pl.lit(ticker, pl.Utf8).alias("T")))

    def grouped(self, date: str) -> pl.DataFrame:
        """Every ticker's unadjusted day bar of `date` (YYYY-MM-DD) in one request; `ts` is 16:00 New York."""
        path = f"/v2/aggs/grouped/locale/us/market/stocks/{date}"
        return _bars(self._call(f"grouped daily bars of {date}", lambda: self._pages(
            f"grouped daily bars of {date}", path, {"adjusted": "false"}, {"T": "str", **AGG_FIELDS})))

    def close(self) -> None:
        self.client.client.clear()


def _dtypes(fields: dict[str, str]) -> dict[str, Any]:
    import polars as pl

    return {k: {"str": pl.Utf8, "int": pl.Int64, "float": pl.Float64}[v] for k, v in fields.items()}


def _parse_page(body: bytes, fields: dict[str, str]) -> tuple[pl.DataFrame, str | None]:
    """(the page's `results` as columns, its `next_url`); a body that is not such JSON is a MalformedResponse."""
    import io

    import polars as pl

    try:
        page = pl.read_json(io.BytesIO(body), schema={"results": pl.List(pl.Struct(_dtypes(fields))),
                                                      "next_url": pl.Utf8})
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise MalformedResponse(f"the REST API sent a malformed JSON body ({str(exc)[:200]}). "
                                "Hint: run again.") from None
    results = page["results"][0] if page.height else None
    frame = results.struct.unnest() if results is not None else pl.DataFrame(schema=_dtypes(fields))
    return frame, page["next_url"][0] if page.height else None


def _bars(frame: pl.DataFrame) -> pl.DataFrame:
    """Aggregates' columns (`T`, `t` ms, `o` ... `n`) as bars in the flat files' schema (BAR_COLUMNS)."""
    import polars as pl

    ts = pl.from_epoch("t", time_unit="ms").dt.replace_time_zone("UTC").dt.cast_time_unit("us").alias("ts")
    return frame.select(pl.col("T").alias("ticker"), ts, pl.col("o").alias("open"), pl.col("h").alias("high"),
                        pl.col("l").alias("low"), pl.col("c").alias("close"), pl.col("v").alias("volume"),
                        "vw", pl.col("n").alias("transactions"))


def empty_bars() -> pl.DataFrame:
    """No bars, in the flat files' schema."""
    import polars as pl

    return _bars(pl.DataFrame(schema=_dtypes({"T": "str", **AGG_FIELDS})))

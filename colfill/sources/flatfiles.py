"""Polygon/Massive aggregate flat files: `{root}/{prefix}/{dataset}/YYYY/MM/YYYY-MM-DD.csv.gz`.

The root is an fsspec URL (`s3://flatfiles` on the Massive endpoint, or a local folder with the same
layout). Dates are found by listing, never by assuming a calendar: there is no file for weekends and
market holidays, and files appear (and are sometimes replaced) a day later. Each object's ETag (or,
locally, mtime) and size are recorded so a replaced file is noticed.

A file is parsed with an explicit schema: tickers are strings with no null tokens (`NA`, `NULL`, `NAN`,
`N/A` are real tickers), `volume` is Float64 (fractional in recent files), `window_start` is UTC epoch
nanoseconds. Rows that fail to parse or break OHLC sanity are returned as rejects with their line
number and reason; the good rows of the file still load.
"""

from __future__ import annotations

import builtins
import datetime as dt
import gzip
import io
import re
import zlib
from typing import Any

import fsspec
import polars as pl

from colfill.bars import CSV_SCHEMA, DATASETS, HEADER, ParsedFile, SourceObject
from colfill.config import S3Settings
from colfill.errors import InvalidArgument, SourceError, SourceUnreachable, TransientError
from colfill.validate import validate

_NAME = re.compile(r"(\d{4})-(\d{2})-(\d{2})\.csv\.gz$")

S3_403_HINT = (
    "Hint: flat files need the S3 access key id and secret from the Massive/Polygon dashboard "
    "(COLFILL_S3_KEY_ID/COLFILL_S3_SECRET), not the REST API key, and a paid plan that includes flat files; "
    "a 403 also means the date is outside your plan's history, not yet published (files appear by about "
    "11:00 ET the next trading day), or the data agreements in the dashboard are not signed."
)


class FlatFiles:
    """A flat-files root: an S3 bucket URL (`s3://flatfiles`) or a local folder."""

    def __init__(
        self, root: str, *, prefix: str = "us_stocks_sip", storage_options: dict[str, Any] | None = None
    ) -> None:
        self.root = root.rstrip("/")
        self.prefix = prefix.strip("/")
        if storage_options is None and self.root.startswith("s3://"):
            storage_options = S3Settings.from_env().storage_options()
        self.fs, self._base = fsspec.core.url_to_fs(self.root, **(storage_options or {}))
        self._base = self._base.rstrip("/")

    def __repr__(self) -> str:
        return f"FlatFiles({self.root!r}, prefix={self.prefix!r})"

    def describe(self) -> str:
        return f"{self.root}/{self.prefix}"

    def _path(self, key: str) -> str:
        return f"{self._base}/{key}" if self._base else key

    def list(self, table: str, start: dt.date, end: dt.date) -> list[SourceObject]:
        """Day files of `table` dated within [start, end], in date order, found by listing."""
        dataset = DATASETS[table]
        base = self._path(f"{self.prefix}/{dataset}")
        found: dict[str, dict[str, Any]] = {}
        for year in range(start.year, end.year + 1):
            try:
                found.update(self.fs.find(f"{base}/{year}", detail=True))
            except FileNotFoundError:
                continue
            except PermissionError as exc:
                where = f"{self.root}/{self.prefix}/{dataset}/{year}/"
                raise SourceUnreachable(f"listing {where} was refused (403). {S3_403_HINT}") from exc
            except Exception as exc:  # botocore/aiohttp errors carry no stable type across versions
                raise _classify(exc, f"{self.root}/{self.prefix}/{dataset}/{year}/") from exc
        if not found and not self._exists(base):
            raise InvalidArgument(
                f"no {dataset} folder at {self.root}/{self.prefix}/{dataset}/. Hint: --source must be the root that "
                f"holds {self.prefix}/ (e.g. s3://flatfiles or a local folder made by `colfill sample`)."
            )
        out = []
        for path, info in found.items():
            m = _NAME.search(path)
            if not m or info.get("type", "file") != "file":
                continue
            day = dt.date(int(m[1]), int(m[2]), int(m[3]))
            if start <= day <= end:
                key = path[len(self._base) + 1 :] if self._base else path
                out.append(SourceObject(key=key, date=day, etag=_etag(info), size=int(info.get("size") or 0)))
        return sorted(out, key=lambda o: o.date)

    def span(self, table: str) -> tuple[dt.date, dt.date] | None:
        """The first and last date of `table`'s day files (None when there are none); lists two years at most."""
        base = self._path(f"{self.prefix}/{DATASETS[table]}")
        try:
            years = sorted(int(p.rstrip("/").rsplit("/", 1)[-1]) for p in self.fs.ls(base, detail=False)
                           if p.rstrip("/").rsplit("/", 1)[-1].isdigit())
        except FileNotFoundError:
            return None
        dates: list[dt.date] = []
        for year in (years[:1] + years[-1:]) if years else []:
            dates += [o.date for o in self.list(table, dt.date(year, 1, 1), dt.date(year, 12, 31))]
        return (min(dates), max(dates)) if dates else None

    def _exists(self, path: str) -> bool:
        try:
            return bool(self.fs.exists(path))
        except PermissionError as exc:
            raise SourceUnreachable(f"access to {self.root} was refused (403). {S3_403_HINT}") from exc
        except Exception as exc:
            raise _classify(exc, self.root) from exc

    def read_bytes(self, obj: SourceObject) -> bytes:
        try:
            with self.fs.open(self._path(obj.key), "rb") as fh:
                data: bytes = fh.read()
        except FileNotFoundError as exc:
            raise SourceError(f"{obj.key}: the file disappeared after listing. Hint: run again.") from exc
        except PermissionError as exc:
            raise SourceError(f"{obj.key}: reading was refused (403). {S3_403_HINT}") from exc
        except Exception as exc:
            raise _classify(exc, obj.key) from exc
        return data

    def read(self, obj: SourceObject, tickers: tuple[str, ...] | None = None) -> ParsedFile:
        return parse(self.read_bytes(obj), obj.key, tickers, obj.date)

    def notes(self, table: str) -> builtins.list[str]:
        return []


def _etag(info: dict[str, Any]) -> str:
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return str(etag).strip('"')
    mtime = info.get("mtime") or info.get("LastModified") or info.get("created")
    if isinstance(mtime, dt.datetime):
        mtime = mtime.timestamp()
    return f"mtime:{int(float(mtime or 0) * 1e9)}"


def _classify(exc: Exception, where: str) -> Exception:
    text = str(exc)
    if "403" in text or "AccessDenied" in text or "Forbidden" in text:
        return SourceUnreachable(f"access to {where} was refused (403). {S3_403_HINT}")
    if "NoSuchBucket" in text:
        return SourceUnreachable(f"{where}: no such bucket. Hint: the Massive bucket is `flatfiles` (s3://flatfiles).")
    if any(s in text for s in ("SlowDown", "503", "500", "Timeout", "timed out", "Connection", "connect")):
        return TransientError(f"{where}: {type(exc).__name__}: {text[:200]}. Hint: a transient S3 error; run again.")
    return SourceError(f"{where}: {type(exc).__name__}: {text[:300]}")


def decompress(data: bytes, key: str) -> bytes:
    try:
        return gzip.decompress(data) if key.endswith(".gz") else data
    except (OSError, EOFError, zlib.error) as exc:
        raise SourceError(
            f"{key}: corrupt gzip ({exc}). Hint: the download may be truncated; the file is skipped and retried "
            "on the next run, other files still load."
        ) from exc


def _header(data: bytes, key: str) -> tuple[str, ...]:
    """The first line, decompressing only as much as it takes (corrupt gzip is reported here)."""
    try:
        if key.endswith(".gz"):
            d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            head = d.decompress(data[:65536], 4096)
        else:
            head = data[:4096]
    except zlib.error as exc:
        raise SourceError(f"{key}: corrupt gzip ({exc}). Hint: the file is skipped, other files still load.") from exc
    first = head.split(b"\n", 1)[0]
    return tuple(first.decode("utf-8", "replace").strip().split(","))


def parse(
    data: bytes, key: str, tickers: tuple[str, ...] | None = None, date: dt.date | None = None
) -> ParsedFile:
    """Parse one aggregate CSV (gzip or plain) into bars and rejects; raise SourceError for a bad file.

    Polars decompresses and parses in one pass on the typed schema; only a file it refuses is read again
    as text to find the offending rows. With `date`, a bar whose New York trading date differs from the
    file's is rejected: a day is loaded and replaced as a whole, so every bar must belong to its file's day.
    """
    header = _header(data, key)
    if header != HEADER:
        raise SourceError(
            f"{key} line 1: unexpected header {','.join(header)!r}. Hint: an aggregates file starts with "
            f"{','.join(HEADER)!r} (minute_aggs_v1/day_aggs_v1); this file is skipped, other files still load."
        )
    try:
        frame = pl.read_csv(
            data, schema=CSV_SCHEMA, null_values=None, empty_string_is_null=False,
            row_index_name="line", row_index_offset=2,
        )
        typed_rejects = None
    except OSError as exc:
        raise SourceError(
            f"{key}: corrupt gzip ({exc}). Hint: the download may be truncated; the file is skipped and retried "
            "on the next run, other files still load."
        ) from exc
    except (pl.exceptions.ComputeError, pl.exceptions.SchemaError, pl.exceptions.NoDataError) as exc:
        frame, typed_rejects = _parse_slow(decompress(data, key), key, exc)
    rows_in = frame.height + (typed_rejects.height if typed_rejects is not None else 0)
    if tickers is not None:
        frame = frame.filter(pl.col("ticker").is_in(list(tickers)))
        if typed_rejects is not None:
            typed_rejects = typed_rejects.filter(pl.col("ticker").is_in(list(tickers)))
    bars, rejects = validate(frame, key, date)
    if typed_rejects is not None:
        rejects = pl.concat([typed_rejects, rejects]).sort("line")
    return ParsedFile(bars=bars, rejects=rejects, rows_in=rows_in)


def _parse_slow(raw: bytes, key: str, exc: Exception) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Fallback for a file the typed parse refused: read as text, cast per column, keep the failures."""
    try:
        text = pl.read_csv(
            io.BytesIO(raw), schema={c: pl.Utf8 for c in HEADER}, null_values=None,
            empty_string_is_null=False, row_index_name="line", row_index_offset=2, truncate_ragged_lines=True,
        )
    except Exception as inner:
        raise SourceError(f"{key}: cannot be parsed as CSV ({str(exc)[:200]}). Hint: the file is skipped.") from inner
    casts = {c: pl.col(c).str.strip_chars().cast(t, strict=False) for c, t in CSV_SCHEMA.items() if c != "ticker"}
    typed = text.with_columns(**{f"__t_{c}": e for c, e in casts.items()})
    bad = pl.lit(None, dtype=pl.Utf8)
    for c in reversed(list(casts)):
        why = pl.format("unparsable {} {}", pl.lit(c), pl.col(c).fill_null("<missing>"))
        bad = pl.when(pl.col(f"__t_{c}").is_null()).then(why).otherwise(bad)
    typed = typed.with_columns(bad.alias("reason"))
    rejects = typed.filter(pl.col("reason").is_not_null()).select(
        pl.lit(key).alias("source_key"), "line", "reason", *HEADER
    )
    good = typed.filter(pl.col("reason").is_null()).select(
        "line", "ticker", *[pl.col(f"__t_{c}").alias(c) for c in casts]
    )
    return good, rejects


def parse_date(value: str, arg: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(f"{arg} {value!r} is not a date. Hint: use YYYY-MM-DD, e.g. 2024-03-07") from None

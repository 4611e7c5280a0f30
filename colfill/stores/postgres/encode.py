"""PostgreSQL's binary COPY format, encoded from Arrow columns with numpy (no per-row Python)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 UTC in Unix microseconds: binary timestamptz's origin
COPY_CHUNK_ROWS = 32_768  # rows per encoded COPY message (~7 MB for bars): the fastest measured

PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # signature, flags, ext
PGCOPY_TRAILER = b"\xff\xff"


def encode_pgcopy(table: pa.Table, chunk_rows: int = COPY_CHUNK_ROWS,
                  keep_order: bool = False) -> tuple[list[str], Iterator[bytes | memoryview]]:
    """Encode `table` as a PostgreSQL binary COPY stream: (column order to name in COPY, byte chunks).

    Vectorised, no per-row Python (~0.17 us a row for 21-column bars): within a chunk, rows that share a
    layout (which values are null, how long each string is) are written into one buffer with exactly
    PostgreSQL's row layout (int16 field count, then int32 length + big-endian value per field, nothing
    for a null) through strided numpy views. Rows are grouped by layout inside a chunk and otherwise keep
    their order, so a ticker's bars (one string length) stay together and in time order. Fixed-width
    columns go first and strings last: the COPY names the columns. Types: string/large_string (text),
    float64, int64, timestamp[us, UTC] (timestamptz). `keep_order` writes runs of consecutive rows of one
    layout instead, every row in its place (direct compress's client-sorted COPY needs them in order).
    """
    fixed: list[tuple[str, str]] = []
    var: list[str] = []
    for f in table.schema:
        t = f.type
        if pa.types.is_float64(t):
            fixed.append((f.name, ">f8"))
        elif pa.types.is_int64(t):
            fixed.append((f.name, ">i8"))
        elif pa.types.is_timestamp(t) and t.unit == "us":
            fixed.append((f.name, "ts"))
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            var.append(f.name)
        else:
            raise TypeError(f"encode_pgcopy: column {f.name} has unsupported type {t}")
    order = [n for n, _ in fixed] + var
    table = table.combine_chunks()
    arrays = {n: table.column(n).chunk(0) if table.column(n).num_chunks else pa.array([], table.schema.field(n).type)
              for n in order}

    def chunks() -> Iterator[bytes | memoryview]:
        yield PGCOPY_HEADER
        for start in range(0, table.num_rows, chunk_rows):
            yield from _encode_rows({k: a.slice(start, chunk_rows) for k, a in arrays.items()}, fixed, var, keep_order)
        yield PGCOPY_TRAILER

    return order, chunks()


def _string_parts(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start offsets into the data buffer, lengths with -1 for null, data buffer) of a string array."""
    width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=width)[arr.offset: arr.offset + len(arr) + 1].astype(np.int64)
    lens = np.diff(offsets)
    if arr.null_count:
        lens = np.where(arr.is_valid().to_numpy(zero_copy_only=False), lens, -1)
    data = arr.buffers()[2]
    return offsets[:-1], lens, np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)


def _be(value: int, kind: str) -> int:
    """`value` encoded big-endian, as the native integer with the same bytes (assigned without a byteswap)."""
    native = {">i2": "<i2", ">i4": "<i4"}[kind] if np.little_endian else kind
    return int(np.array(value, dtype=kind).view(native))


def _values(arr: pa.Array, kind: str) -> np.ndarray:
    """The column's values as native int64/float64 (timestamps shifted to PostgreSQL's epoch); they are
    byte-swapped on their way into the buffer. Values under nulls are whatever the buffer holds: they are
    never written."""
    base = np.float64 if kind == ">f8" else np.int64
    raw = np.frombuffer(arr.buffers()[1], dtype=base)[arr.offset: arr.offset + len(arr)]
    return raw - PG_EPOCH_US if kind == "ts" else raw


def _field(buf: np.ndarray, rows: int, width: int, offset: int, dtype: Any, cols: int = 0,
           step: int = 12) -> np.ndarray:
    """A strided view into `buf` (rows of `width` bytes) of one field at `offset` in every row, or of `cols`
    fields `step` bytes apart (a run of int32 lengths or of 8-byte values)."""
    shape, strides = ((rows, cols), (width, step)) if cols else ((rows,), (width,))
    return np.ndarray(shape, dtype=dtype, buffer=buf, offset=offset, strides=strides)


def _encode_rows(arrays: dict[str, pa.Array], fixed: list[tuple[str, str]], var: list[str],
                 keep_order: bool = False) -> list[memoryview]:
    """The rows' COPY encoding, one buffer per row layout (see encode_pgcopy)."""
    m = len(next(iter(arrays.values()))) if arrays else 0
    if m == 0:
        return []
    values = [_values(arrays[name], kind) for name, kind in fixed]
    valid = [arrays[name].is_valid().to_numpy(zero_copy_only=False) if arrays[name].null_count else None
             for name, _ in fixed]
    strings = [_string_parts(arrays[name]) for name in var]

    # each row's layout as one integer: a bit per nullable column, then each string's length + 1
    parts = [~v for v in valid if v is not None] + [lens + 1 for _, lens, _ in strings]
    bits = sum(1 for v in valid if v is not None) + sum(int(lens.max() + 1).bit_length() for _, lens, _ in strings)
    if not parts:
        key = np.zeros(m, dtype=np.int64)
    elif bits <= 62:
        key, shift = np.zeros(m, dtype=np.int64), 0
        for part in parts:
            key |= part.astype(np.int64) << shift
            shift += 1 if part.dtype == np.bool_ else int(part.max()).bit_length()
    else:
        key = np.unique(np.column_stack(parts).astype(np.int64), axis=0, return_inverse=True)[1].ravel()
    if key.min() == key.max():
        groups: list[np.ndarray | None] = [None]
    elif keep_order:
        groups = [*np.split(np.arange(m), np.flatnonzero(np.diff(key)) + 1)]
    else:
        _, inverse = np.unique(key, return_inverse=True)
        inverse = inverse.ravel()
        order = np.argsort(inverse.astype(np.int32), kind="stable")
        groups = [*np.split(order, np.cumsum(np.bincount(inverse))[:-1])]

    kinds = [">f8" if kind == ">f8" else ">i8" for _, kind in fixed]
    count, eight, null = _be(len(fixed) + len(var), ">i2"), _be(8, ">i4"), _be(-1, ">i4")
    out = []
    for rows in groups:
        first = 0 if rows is None else int(rows[0])
        n = m if rows is None else len(rows)
        present = [v is None or bool(v[first]) for v in valid]
        widths = [int(lens[first]) for _, lens, _ in strings]
        width = 2 + sum(12 if p else 4 for p in present) + sum(4 + max(w, 0) for w in widths)
        buf = np.empty(n * width, dtype=np.uint8)
        _field(buf, n, width, 0, np.int16)[...] = count
        offset, i = 2, 0
        while i < len(fixed):
            if not present[i]:
                _field(buf, n, width, offset, np.int32)[...] = null
                offset, i = offset + 4, i + 1
                continue
            run = i
            while run < len(fixed) and present[run]:
                run += 1
            _field(buf, n, width, offset, np.int32, run - i)[...] = eight
            for j in range(i, run):  # one strided pass per column, byte-swapping as it copies
                _field(buf, n, width, offset + 4 + 12 * (j - i), kinds[j])[...] = (
                    values[j] if rows is None else values[j][rows])
            offset, i = offset + 12 * (run - i), run
        for (starts, _, data), w in zip(strings, widths):
            _field(buf, n, width, offset, np.int32)[...] = _be(w, ">i4")
            if w > 0:
                at = starts if rows is None else starts[rows]
                _field(buf, n, width, offset + 4, np.uint8, w, 1)[...] = data[at[:, None] + np.arange(w)]
            offset += 4 + max(w, 0)
        out.append(buf.data)
    return out

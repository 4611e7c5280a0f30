"""Reference tables in PostgreSQL: upserted by key (a rerun replaces rows), read back with their types."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from colfill.bars import REFERENCE_TABLES, to_table
from colfill.stores.postgres import PostgresStore

pytestmark = pytest.mark.postgres


def test_upsert_by_key_and_read_back(pg_url: str) -> None:
    rows = [SimpleNamespace(ticker="AAPL", execution_date="2020-08-31", split_from=1, split_to=4, id="s1"),
            SimpleNamespace(ticker="TSLA", execution_date="2022-08-25", split_from=1, split_to=3, id="s2")]
    with PostgresStore(pg_url, load_workers=1) as s:
        assert s.read_reference("splits") is None
        assert s.write_reference("splits", to_table(REFERENCE_TABLES["splits"], rows)) == 2
        rows[1].split_to = 3.5  # a correction, same key
        s.write_reference("splits", to_table(REFERENCE_TABLES["splits"], rows))
        back = s.read_reference("splits")
    assert back is not None
    got = sorted(back.to_pylist(), key=lambda r: r["ticker"])
    assert got == [{"ticker": "AAPL", "execution_date": dt.date(2020, 8, 31), "split_from": 1.0, "split_to": 4.0,
                    "id": "s1"},
                   {"ticker": "TSLA", "execution_date": dt.date(2022, 8, 25), "split_from": 1.0, "split_to": 3.5,
                    "id": "s2"}]


def test_tickers_and_dividends_types(pg_url: str) -> None:
    ticker = SimpleNamespace(ticker="A", name="Agilent", market="stocks", locale="us", primary_exchange="XNYS",
                             type="CS", active=True, currency_name="usd", cik="0001090872", composite_figi="F",
                             share_class_figi="G", list_date="1999-11-18", delisted_utc=None,
                             last_updated_utc="2022-04-27T00:00:00Z")
    div = SimpleNamespace(ticker="A", ex_dividend_date="2024-01-02", dividend_type=None, cash_amount=0.236,
                          currency="USD", declaration_date="2023-11-20", record_date="2024-01-03",
                          pay_date="2024-01-24", frequency=4, id="d1")
    with PostgresStore(pg_url, load_workers=1) as s:
        s.write_reference("tickers", to_table(REFERENCE_TABLES["tickers"], [ticker]))
        s.write_reference("dividends", to_table(REFERENCE_TABLES["dividends"], [div]))
        t = s.read_reference("tickers")
        d = s.read_reference("dividends")
    assert t is not None and d is not None
    row = t.to_pylist()[0]
    assert row["active"] is True and row["list_date"] == dt.date(1999, 11, 18) and row["delisted_utc"] is None
    assert row["last_updated_utc"] == dt.datetime(2022, 4, 27, tzinfo=dt.timezone.utc)
    assert d.to_pylist()[0]["dividend_type"] == "CD" and d.to_pylist()[0]["frequency"] == 4

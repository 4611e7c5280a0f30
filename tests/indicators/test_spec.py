"""Indicator specs: parsing `--indicators`, column names, errors for bad specs, and the set's id."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colfill.errors import InvalidArgument
from colfill.indicators.spec import EMA, MACD, RSI, SMA, VWAP, BBands, IndicatorSet

DEFAULT_TOKEN = "sma:20,sma:50,ema:20,rsi:14,macd:12:26:9,bb:20:2,vwap"
DEFAULT_COLUMNS = ("sma_20", "sma_50", "ema_20", "rsi_14", "macd", "macd_signal", "macd_hist",
                   "bb_upper", "bb_middle", "bb_lower", "vwap")


def test_default_set_columns():
    assert IndicatorSet.default().columns == DEFAULT_COLUMNS


@pytest.mark.parametrize("text", [None, "", "  ", "default", "DEFAULT", DEFAULT_TOKEN])
def test_default_spellings(text):
    assert IndicatorSet.parse(text) == IndicatorSet.default()


def test_none_is_empty():
    ind = IndicatorSet.parse("none")
    assert ind.indicators == () and ind.columns == () and ind.token() == "none"


def test_parse_example():
    ind = IndicatorSet.parse("sma:10,ema:50,rsi:14,macd:12:26:9,bb:20:2,vwap")
    assert ind.indicators == (SMA(10), EMA(50), RSI(14), MACD(12, 26, 9), BBands(20, 2.0), VWAP())
    assert ind.columns == ("sma_10", "ema_50", "rsi_14", "macd", "macd_signal", "macd_hist",
                           "bb_upper", "bb_middle", "bb_lower", "vwap")


def test_case_spaces_and_empty_tokens():
    assert IndicatorSet.parse(" SMA:10 , Ema:5,,vwap ") == IndicatorSet((SMA(10), EMA(5), VWAP()))


def test_duplicates_collapse():
    assert IndicatorSet.parse("sma:10,sma:10,bb:20:2,bb:20:2.0").indicators == (SMA(10), BBands(20, 2.0))


def test_omitted_parameters_take_the_defaults():
    assert IndicatorSet.parse("macd,bb").indicators == (MACD(12, 26, 9), BBands(20, 2.0))
    assert IndicatorSet.parse("macd:5:35").indicators == (MACD(5, 35, 9),)


@pytest.mark.parametrize(
    ("text", "columns"),
    [
        ("sma:10", ("sma_10",)),
        ("ema:3", ("ema_3",)),
        ("rsi:2", ("rsi_2",)),
        ("macd:12:26:9", ("macd", "macd_signal", "macd_hist")),
        ("macd:3:6:2", ("macd_3_6_2", "macd_signal_3_6_2", "macd_hist_3_6_2")),
        ("bb:20:2", ("bb_upper", "bb_middle", "bb_lower")),
        ("bb:4:1.5", ("bb_upper_4_1p5", "bb_middle_4_1p5", "bb_lower_4_1p5")),
        ("bb:20:3", ("bb_upper_20_3", "bb_middle_20_3", "bb_lower_20_3")),
        ("vwap", ("vwap",)),
    ],
)
def test_column_names(text, columns):
    assert IndicatorSet.parse(text).columns == columns


def test_state_columns_and_lookback():
    ind = IndicatorSet.parse("sma:5,ema:3,rsi:2,macd:3:6:2,bb:4:1.5,vwap")
    assert ind.state_columns == ("ema_3__ema", "rsi_2__avg_gain", "rsi_2__avg_loss", "macd_3_6_2__fast",
                                 "macd_3_6_2__slow", "macd_3_6_2__signal", "vwap__date", "vwap__pv", "vwap__v")
    # Enough closes to finish the longest warm-up: MACD's first value is at index 6+2-2 = 6.
    assert ind.lookback == 7
    assert IndicatorSet.default().lookback == 50
    assert IndicatorSet.parse("vwap").lookback == 2


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("sma:10,foo:3", "foo"),  # unknown name
        ("sma:10,macdx", "macdx"),
        ("sma:ten", "sma:ten"),  # non-numeric
        ("bb:20:two", "bb:20:two"),
        ("ema:2.5", "ema:2.5"),  # periods are integers
        ("sma:0", "sma:0"),  # zero period
        ("ema:1", "ema:1"),
        ("rsi:-3", "rsi:-3"),
        ("macd:0:26:9", "macd:0:26:9"),
        ("bb:20:0", "bb:20:0"),  # zero factor
        ("bb:20:nan", "bb:20:nan"),  # would make every band NaN
        ("bb:20:inf", "bb:20:inf"),
        ("macd:26:12:9", "macd:26:12:9"),  # fast >= slow
        ("macd:12:12:9", "macd:12:12:9"),
        ("macd:30", "macd:30"),  # fast 30 against the default slow 26
        ("sma", "sma"),  # missing period
        ("sma:10:5", "sma:10:5"),  # too many parameters
        ("vwap:3", "vwap:3"),
    ],
)
def test_bad_specs_name_the_token(text, bad):
    with pytest.raises(InvalidArgument) as info:
        IndicatorSet.parse(text)
    assert repr(bad) in str(info.value)
    assert isinstance(info.value, ValueError)  # InvalidArgument is also a ValueError


def test_duplicate_columns_are_refused():
    with pytest.raises(InvalidArgument, match="sma_10"):
        IndicatorSet((SMA(10), SMA(10)))


def test_default_id_is_pinned():
    # State tables and lineage are keyed by the id: changing it orphans every existing state.
    ind = IndicatorSet.default()
    assert ind.token() == DEFAULT_TOKEN
    assert ind.id == hashlib.sha256(DEFAULT_TOKEN.encode()).hexdigest()[:12] == "d5c04df1c2b9"


def test_id_ignores_spelling_but_not_content():
    a = IndicatorSet.parse("SMA:10, ema:5 ,bb:20:2.0")
    b = IndicatorSet.parse("sma:10,ema:5,bb:20:2")
    assert a.id == b.id and len(a.id) == 12
    assert IndicatorSet.parse("sma:10,ema:6").id != a.id
    assert IndicatorSet.parse("bb:20:2.0000001").id != IndicatorSet.parse("bb:20:2").id


_specs = st.lists(
    st.one_of(
        st.builds(SMA, st.integers(2, 300)),
        st.builds(EMA, st.integers(2, 300)),
        st.builds(RSI, st.integers(2, 300)),
        st.integers(1, 50).flatmap(lambda f: st.builds(MACD, st.just(f), st.integers(f + 1, 120), st.integers(1, 50))),
        st.builds(BBands, st.integers(2, 300), st.floats(0.01, 10, allow_nan=False, allow_infinity=False)),
        st.just(VWAP()),
    ),
    max_size=6,
    unique_by=lambda i: i.columns,
)


@settings(max_examples=200, deadline=None)
@given(indicators=_specs)
def test_token_round_trips(indicators):
    # The token names the set in state and lineage, so parsing it back must give the same set (and the same
    # columns, which is what a stored table holds).
    ind = IndicatorSet(tuple(indicators))
    again = IndicatorSet.parse(ind.token())
    assert again == ind
    assert again.columns == ind.columns
    assert again.id == ind.id


@settings(max_examples=200, deadline=None)
@given(a=_specs, b=_specs)
def test_distinct_sets_have_distinct_ids(a, b):
    x, y = IndicatorSet(tuple(a)), IndicatorSet(tuple(b))
    assert (x.id == y.id) == (x == y)

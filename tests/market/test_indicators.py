"""The seven indicators against reference values, the registry's validation, warm-up and causality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from django.core.exceptions import ValidationError

from market.indicators import (
    REGISTRY,
    compute,
    describe_registry,
    validate_config,
    validate_config_fields,
    warmup_bars,
)
from tests.market.conftest import DATA

TA = DATA / "indicator_fixtures" / "ta"
SETTLED = 5  # ta's own tests compare the last five rows


def close_only(closes: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"high": closes, "low": closes, "close": closes})


def random_bars(count: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 1, count))
    high = close + rng.uniform(0.1, 2, count)
    low = close - rng.uniform(0.1, 2, count)
    index = pd.date_range("2000-01-03", periods=count, freq="B", tz="UTC")
    return pd.DataFrame({"open": close, "high": high, "low": low, "close": close, "volume": 1000.0}, index=index)


# --- Reference values ---------------------------------------------------------------------------------------------


def test_rsi_matches_ta_worksheet_on_settled_rows():
    sheet = pd.read_csv(TA / "cs-rsi.csv")

    result = compute(close_only(sheet["Close"]), "RSI", {"period": 14})

    np.testing.assert_allclose(result["rsi"].tail(SETTLED), sheet["RSI"].tail(SETTLED), atol=1e-5)


def test_macd_matches_ta_worksheet_on_settled_rows():
    sheet = pd.read_csv(TA / "cs-macd.csv")

    result = compute(close_only(sheet["Close"]), "MACD", {"fast": 12, "slow": 26, "signal": 9})

    expected = sheet[["MACD_line", "MACD_signal", "MACD_diff"]].tail(SETTLED).to_numpy()
    np.testing.assert_allclose(result[["macd", "signal", "histogram"]].tail(SETTLED), expected, atol=1e-7)


@pytest.mark.parametrize(("sheet_name", "period"), [("cs-atr", 14), ("cs-atr2", 10)], ids=["atr-14", "atr-10"])
def test_atr_matches_wilder_worksheets(sheet_name, period):
    sheet = pd.read_csv(TA / f"{sheet_name}.csv")

    result = compute(sheet.rename(columns=str.lower), "ATR", {"period": period})

    np.testing.assert_allclose(result["atr"].tail(SETTLED), sheet["ATR"].tail(SETTLED), atol=1e-8)
    # Every value from the seed on, not only the last five: the vectorised average is the same recursion.
    seeded = sheet["ATR"] != 0
    np.testing.assert_allclose(result["atr"][seeded], sheet["ATR"][seeded], atol=1e-8)


def test_bollinger_matches_ta_worksheet_population_std():
    sheet = pd.read_csv(TA / "cs-bbands.csv")

    result = compute(close_only(sheet["Close"]), "BB", {"period": 20, "std": 2})

    expected = sheet[["HighBand", "MiddleBand", "LowBand"]].tail(SETTLED).to_numpy()
    np.testing.assert_allclose(result[["upper", "middle", "lower"]].tail(SETTLED), expected, atol=1e-5)


def test_bollinger_matches_spy_file_from_row_20():
    # The SPY file's bands use the sample standard deviation (ddof=1); ours, like Bollinger's and ta's, the
    # population one. s_sample = s_pop * sqrt(n / (n - 1)), so a multiplier of 2 * sqrt(20/19) gives its bands.
    spy = pd.read_csv(DATA / "SPY_daily_2011-07_to_2012-06_with_bollinger_mplfinance.csv").rename(columns=str.lower)

    result = compute(spy, "BB", {"period": 20, "std": 2 * np.sqrt(20 / 19)})

    full_windows = slice(19, None)  # the file is exact from its 20th row, the first with 20 closes behind it
    np.testing.assert_allclose(result["upper"][full_windows], spy["upperb"][full_windows], atol=1e-9)
    np.testing.assert_allclose(result["lower"][full_windows], spy["lowerb"][full_windows], atol=1e-9)


def test_sma_and_ema_match_their_definitions():
    bars = random_bars(60)

    sma = compute(bars, "SMA", {"period": 10})["sma"]
    ema = compute(bars, "EMA", {"period": 10})["ema"]

    assert sma.iloc[-1] == pytest.approx(bars["close"].iloc[-10:].mean())
    # EMA from the first close with alpha = 2 / (period + 1), shown once the window is full.
    alpha, value = 2 / 11, bars["close"].iloc[0]
    for close in bars["close"].iloc[1:]:
        value = alpha * close + (1 - alpha) * value
    assert ema.iloc[-1] == pytest.approx(value)


# --- Supertrend: a worked example ----------------------------------------------------------------------------------

# period 3, multiplier 1. Every bar is 2 wide and contains the previous close, so every true range is 2 and the ATR
# is 2 from bar 2 on: basic upper = (high+low)/2 + 2, basic lower = (high+low)/2 - 2.
# Rules: upper = basic upper if it is lower than the previous upper or the previous close broke above the previous
# upper, else the previous upper (mirror for lower). Up turns down on close < lower; down turns up on close > upper.
# columns: high, low, close, upper band, lower band, direction, supertrend
SUPERTREND_EXAMPLE = [
    (11, 9, 10.5, None, None, None, None),
    (12, 10, 11.5, None, None, None, None),
    (13, 11, 12.5, 14, 10, +1, 10),  # first ATR; close 12.5 > mid 12, so it starts up
    (14, 12, 13.5, 14, 11, +1, 11),  # basic upper 15 is not below 14 and 12.5 did not break 14: upper holds
    (15, 13, 14.5, 14, 12, +1, 12),
    (16, 14, 15.0, 17, 13, +1, 13),  # the previous close 14.5 broke above 14: upper resets to 17
    (16, 14, 14.5, 17, 13, +1, 13),
    (15, 13, 13.5, 16, 13, +1, 13),  # lower holds at 13 (basic 12 would loosen it)
    (14, 12, 12.2, 15, 13, -1, 15),  # FLIP DOWN: close 12.2 falls below the lower band 13; the line jumps to upper
    (13, 11, 11.5, 14, 10, -1, 14),  # the previous close 12.2 broke below 13: lower resets to 10
    (12, 10, 10.5, 13, 10, -1, 13),
    (11, 9, 10.0, 12, 10, -1, 12),
    (11, 9, 10.5, 12, 10, -1, 12),  # upper holds at 12 (basic 12 is not lower)
    (12, 10, 11.5, 12, 10, -1, 12),  # 11.5 is not above 12: still down
    (13, 11, 12.5, 12, 10, +1, 10),  # FLIP UP: close 12.5 rises above the upper band 12; the line drops to lower
    (14, 12, 13.5, 15, 11, +1, 11),  # the previous close 12.5 broke above 12: upper resets to 15
    (15, 13, 14.5, 15, 12, +1, 12),
    (16, 14, 15.5, 15, 13, +1, 13),
    (17, 15, 16.5, 18, 14, +1, 14),  # the previous close 15.5 broke above 15: upper resets to 18
    (18, 16, 17.5, 18, 15, +1, 15),
]


def test_supertrend_follows_the_hand_worked_example():
    example = pd.DataFrame(
        SUPERTREND_EXAMPLE, columns=["high", "low", "close", "upper", "lower", "direction", "supertrend"], dtype=float
    )

    result = compute(example[["high", "low", "close"]], "SUPERTREND", {"period": 3, "multiplier": 1})

    np.testing.assert_array_equal(result["direction"].to_numpy(), example["direction"].to_numpy())
    np.testing.assert_allclose(result["supertrend"].to_numpy(), example["supertrend"].to_numpy())
    assert list(result.columns) == ["supertrend", "direction"]


def test_supertrend_line_is_the_lower_band_in_uptrends_and_below_the_close():
    bars = random_bars(500)

    result = compute(bars, "SUPERTREND", {})

    up = result["direction"] == 1
    down = result["direction"] == -1
    assert up.any() and down.any()
    assert (result["supertrend"][up] <= bars["close"][up]).all()
    assert (result["supertrend"][down] >= bars["close"][down]).all()


# --- Causality and warm-up -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(REGISTRY))
def test_values_up_to_t_do_not_change_when_later_bars_change(name):
    bars = random_bars(300)
    altered = bars.copy()
    altered.iloc[200:, :4] *= 1.5  # a different future

    before = compute(bars, name, {}).iloc[:200]
    after = compute(altered, name, {}).iloc[:200]

    pd.testing.assert_frame_equal(before, after)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_first_value_is_at_the_warm_up_bar(name):
    bars = random_bars(120)

    result = compute(bars, name, {})

    first_full = int(np.argmax(result.notna().all(axis=1).to_numpy()))
    assert first_full == warmup_bars(name, {}) - 1
    assert result.iloc[first_full:].notna().all(axis=None)


def test_output_columns_are_the_json_keys():
    bars = random_bars(80)

    columns = {name: list(compute(bars, name, {}).columns) for name in REGISTRY}

    assert columns == {
        "RSI": ["rsi"],
        "MACD": ["macd", "signal", "histogram"],
        "ATR": ["atr"],
        "SMA": ["sma"],
        "EMA": ["ema"],
        "BB": ["upper", "middle", "lower"],
        "SUPERTREND": ["supertrend", "direction"],
    }


def test_fewer_bars_than_the_warm_up_give_empty_values_not_an_error():
    result = compute(random_bars(5), "SUPERTREND", {"period": 10})

    assert result.isna().all(axis=None)


# --- Registry and validation -----------------------------------------------------------------------------------------


def test_validate_config_fills_defaults_from_the_original_design():
    filled = {name: validate_config(name, {}) for name in REGISTRY}

    assert filled == {
        "RSI": {"period": 14},
        "MACD": {"fast": 12, "slow": 26, "signal": 9},
        "ATR": {"period": 14},
        "SMA": {"period": 20},
        "EMA": {"period": 20},
        "BB": {"period": 20, "std": 2.0},
        "SUPERTREND": {"period": 10, "multiplier": 3.0},
    }


def test_validate_config_coerces_command_line_strings():
    assert validate_config("bb", {"period": "30", "std": "2.5"}) == {"period": 30, "std": 2.5}


@pytest.mark.parametrize(
    ("indicator", "params", "message"),
    [
        ("STOCH", {}, "Unknown indicator 'STOCH': choose one of RSI, MACD, ATR, SMA, EMA, BB, SUPERTREND"),
        ("RSI", {"length": 14}, "RSI has no parameter 'length' (it takes: period)"),
        ("RSI", {"period": 1}, "RSI period must be between 2 and 500, got 1"),
        ("SMA", {"period": 12.5}, "SMA period must be a whole number, got 12.5"),
        ("EMA", {"period": "abc"}, "EMA period must be a whole number between 2 and 500, got 'abc'"),
        ("BB", {"std": float("nan")}, "BB std must be a number between 0.1 and 10.0, got nan"),
        ("ATR", {"period": True}, "ATR period must be a whole number between 1 and 500, got True"),
        ("MACD", {"fast": 26, "slow": 12}, "MACD fast (26) must be shorter than slow (12)"),
    ],
    ids=["unknown-indicator", "unknown-param", "below-range", "fraction", "not-a-number", "nan", "bool", "macd-order"],
)
def test_bad_configurations_are_rejected_with_a_clear_message(indicator, params, message):
    with pytest.raises(ValidationError) as caught:
        validate_config(indicator, params)

    assert caught.value.messages == [message]


def test_every_problem_is_reported_at_once():
    with pytest.raises(ValidationError) as caught:
        validate_config("SUPERTREND", {"period": 0, "multiplier": 99, "atr": 3})

    assert caught.value.messages == [
        "SUPERTREND has no parameter 'atr' (it takes: period, multiplier)",
        "SUPERTREND period must be between 1 and 500, got 0",
        "SUPERTREND multiplier must be between 0.1 and 20.0, got 99",
    ]


def test_compute_refuses_a_bad_configuration_instead_of_guessing():
    with pytest.raises(ValidationError):
        compute(random_bars(30), "RSI", {"period": -3})


def test_registry_describes_types_ranges_and_defaults():
    described = describe_registry()

    assert described["BB"]["params"]["std"] == {
        "type": "float",
        "min": 0.1,
        "max": 10.0,
        "default": 2.0,
        "help": "band width in population standard deviations",
    }
    assert described["MACD"]["columns"] == ["macd", "signal", "histogram"]
    assert {name: spec["panel"] for name, spec in described.items()} == {
        "RSI": "rsi",
        "MACD": "macd",
        "ATR": "atr",
        "SMA": "price",
        "EMA": "price",
        "BB": "price",
        "SUPERTREND": "price",
    }


@pytest.mark.parametrize(
    ("indicator", "params", "bars"),
    [("RSI", {"period": 14}, 14), ("MACD", {}, 34), ("BB", {"period": 50}, 50), ("SUPERTREND", {"period": 7}, 7)],
    ids=["rsi", "macd", "bb-50", "supertrend-7"],
)
def test_warmup_bars_per_indicator(indicator, params, bars):
    assert warmup_bars(indicator, params) == bars


def test_form_errors_are_keyed_by_the_field_the_user_typed_in():
    with pytest.raises(ValidationError) as unknown:
        validate_config_fields("KDJ", {})
    with pytest.raises(ValidationError) as bad_param:
        validate_config_fields("RSI", {"period": 0})

    assert unknown.value.message_dict == {
        "indicator_type": ["Unknown indicator 'KDJ': choose one of RSI, MACD, ATR, SMA, EMA, BB, SUPERTREND"]
    }
    assert bad_param.value.message_dict == {"parameters": ["RSI period must be between 2 and 500, got 0"]}

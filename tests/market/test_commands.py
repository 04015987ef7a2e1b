"""The `indicators` and `render_chart` commands, and the shared command grammar in trading/cli.py."""

from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from core.cli import parse_indicator_spec, parse_params
from market.charts import png_size
from market.services import import_bars_file
from tests.factories import StrategyFactory, SymbolFactory, UserFactory
from tests.market.conftest import DATA, LAYOUTS
from trading.cli import resolve_strategy

SPY_BOLLINGER = DATA / "SPY_daily_2011-07_to_2012-06_with_bollinger_mplfinance.csv"


def run(command: str, *args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def spy(db):
    import_bars_file(SPY_BOLLINGER, symbol="SPY")


# --- indicators -------------------------------------------------------------------------------------------------------


def test_indicators_json_has_the_contract_shape(spy):
    out, _ = run("indicators", "SPY", "--indicator", "bb", "--last", "2", "--json")

    payload = json.loads(out)
    assert payload["indicator"] == "BB"
    assert payload["params"] == {"period": 20, "std": 2.0}
    assert [row["t"] for row in payload["values"]] == ["2012-06-28", "2012-06-29"]
    assert set(payload["values"][0]) == {"t", "upper", "middle", "lower"}
    assert all(isinstance(row["middle"], float) for row in payload["values"])


def test_indicators_json_uses_null_for_warm_up_and_integers_for_direction(spy):
    out, _ = run("indicators", "SPY", "--indicator", "SUPERTREND", "--param", "period=5", "--last", "252", "--json")

    values = json.loads(out)["values"]
    assert values[0] == {"t": "2011-07-01", "supertrend": None, "direction": None}
    assert {row["direction"] for row in values[4:]} == {1, -1}
    assert json.loads(out)["params"] == {"period": 5, "multiplier": 3.0}


def test_indicators_last_defaults_to_one_row_in_an_aligned_table(spy):
    out, _ = run("indicators", "SPY", "--indicator", "MACD")

    lines = out.splitlines()
    assert lines[0] == "MACD (fast=12, slow=26, signal=9) on SPY 1d"
    assert lines[1].split() == ["t", "macd", "signal", "histogram"]
    assert len(lines) == 3 and lines[2].startswith("2012-06-29")
    assert len(lines[1]) == len(lines[2])  # columns line up


def test_indicators_over_a_csv_do_not_import_it(db):
    from market.models import Bar

    out, _ = run(
        "indicators",
        "BTC",
        "--csv",
        str(LAYOUTS / "BTCUSD_1h_newest48.csv"),
        "--bar-size",
        "1h",
        "--indicator",
        "RSI",
        "--json",
    )

    assert json.loads(out)["values"][0]["t"] == "2019-10-17T09:00:00Z"
    assert not Bar.objects.exists()


def test_indicators_over_a_csv_report_its_skipped_lines(db):
    out, err = run(
        "indicators",
        "--csv",
        str(LAYOUTS / "SPY_yahoo_2015-02-20_to_2015-04-10.csv"),
        "--indicator",
        "SMA",
        "--param",
        "period=5",
    )

    assert "skipped line 11:" in err and "skipped line 28:" in err
    assert out.splitlines()[-1].startswith("2015-04-10")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["SPY", "--indicator", "VWAP"], "Unknown indicator 'VWAP'"),
        (["SPY", "--indicator", "RSI", "--param", "period"], "write it as name=value"),
        (["SPY", "--indicator", "RSI", "--param", "window=3"], "RSI has no parameter 'window'"),
        (["SPY", "--indicator", "RSI", "--last", "0"], "--last must be at least 1"),
        (["NOPE", "--indicator", "RSI"], "unknown symbol 'NOPE'"),
        (["--indicator", "RSI"], "name a SYMBOL, or a file with --csv PATH"),
        (["SPY", "--indicator", "RSI", "--bar-size", "1h"], "no 1h bars for SPY"),
    ],
    ids=[
        "unknown-indicator",
        "param-without-value",
        "unknown-param",
        "last-zero",
        "unknown-symbol",
        "no-input",
        "no-bars",
    ],
)
def test_indicators_errors_are_clear(spy, args, message):
    with pytest.raises(CommandError, match=message):
        run("indicators", *args)


def test_errors_go_to_stderr_with_a_non_zero_exit(db):
    # A real process, as the user runs it: the message on stderr, nothing on stdout, exit status 1 or 2.
    bad_size = subprocess.run(
        [sys.executable, "manage.py", "indicators", "SPY", "--indicator", "RSI", "--bar-size", "2d"],
        capture_output=True,
        text=True,
        cwd=DATA.parent.parent,
    )

    assert bad_size.returncode == 2
    assert "unknown bar size '2d': use one of 1min 5min 15min 30min 1h 4h 1d 1w" in bad_size.stderr
    assert bad_size.stdout == ""


# --- render_chart -----------------------------------------------------------------------------------------------------


def test_render_chart_writes_a_native_size_png(spy, tmp_path):
    out_file = tmp_path / "spy.png"

    out, _ = run(
        "render_chart",
        "SPY",
        "--bars",
        "60",
        "--indicator",
        "RSI",
        "--indicator",
        "BB:period=10,std=2.5",
        "--out",
        str(out_file),
    )

    assert png_size(out_file.read_bytes()) == (1400, 788)
    assert out.startswith(f"{out_file}: 1400x788 px,") and out.strip().endswith("60 1d bars")


def test_render_chart_weekly_from_daily(spy, tmp_path):
    out_file = tmp_path / "weekly.png"

    out, _ = run("render_chart", "SPY", "--bar-size", "1w", "--out", str(out_file))

    assert png_size(out_file.read_bytes()) == (1400, 788)
    assert "53 1w bars" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--indicator", "BB:std=wide"], "BB std must be a number between 0.1 and 10.0, got 'wide'"),
        (["--indicator", ":period=3"], "start with the indicator name"),
        (["--indicator", "RSI:period"], r"write each parameter as name=value, e\.g\. --indicator RSI:period=14$"),
        (["--bars", "1"], "--bars must be at least 2"),
    ],
    ids=["bad-param", "no-name", "param-without-value", "too-few-bars"],
)
def test_render_chart_errors_are_clear_and_write_nothing(spy, tmp_path, args, message):
    out_file = tmp_path / "chart.png"

    with pytest.raises(CommandError, match=message):
        run("render_chart", "SPY", *args, "--out", str(out_file))

    assert not out_file.exists()


def test_render_chart_needs_a_png_path_in_an_existing_folder(spy, tmp_path):
    with pytest.raises(CommandError, match="name the file"):
        run("render_chart", "SPY", "--out", str(tmp_path / "chart.jpg"))
    with pytest.raises(CommandError, match="does not exist"):
        run("render_chart", "SPY", "--out", str(tmp_path / "missing" / "chart.png"))


# --- The shared grammar -----------------------------------------------------------------------------------------------


def test_params_and_indicator_specs_parse():
    assert parse_params(["period=14", " std = 2.5 "]) == {"period": "14", "std": "2.5"}
    assert parse_indicator_spec("bb:period=20,std=2.5") == ("BB", {"period": "20", "std": "2.5"})
    assert parse_indicator_spec("RSI") == ("RSI", {})


def test_a_repeated_param_is_an_error():
    with pytest.raises(CommandError, match="--param period is given twice"):
        parse_params(["period=14", "period=20"])


@pytest.mark.django_db
def test_resolve_strategy_by_id_or_exact_name():
    strategy = StrategyFactory(name="Momentum")

    assert resolve_strategy(str(strategy.pk)) == strategy
    assert resolve_strategy("Momentum") == strategy
    with pytest.raises(CommandError, match="no strategy with id or name 'momentum'"):
        resolve_strategy("momentum")


@pytest.mark.django_db
def test_an_ambiguous_strategy_name_lists_the_candidates():
    symbol = SymbolFactory()
    first = StrategyFactory(name="Swing", owner=UserFactory(username="alice"), symbol=symbol)
    second = StrategyFactory(name="Swing", owner=UserFactory(username="bob"), symbol=symbol)

    with pytest.raises(CommandError) as caught:
        resolve_strategy("Swing")

    assert str(caught.value) == (
        f"2 strategies are named 'Swing': id {first.pk} (owner alice); id {second.pk} (owner bob). Name one by its id."
    )

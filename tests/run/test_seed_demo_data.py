"""What `manage.py seed_demo` loads: the demo bars, strategy and data files. Seeded once for the module (inside a
transaction rolled back at the end); every test here only reads."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import transaction

from brokers.models import BrokerKind
from market.models import Bar, BarSize, MarketDataSource
from signals_app.models import Analyst
from trading.management.commands.seed_demo import demo_data_dir
from trading.models import Strategy


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    """The seed's output; its rows stay for the module's tests and are rolled back after the last."""
    with django_db_blocker.unblock(), transaction.atomic():
        yield seed()
        transaction.set_rollback(True)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("ticker", "bars", "first", "last"),
    [
        pytest.param("SPY", 2517, dt.date(2007, 12, 31), dt.date(2017, 12, 29), id="SPY-less-two-bad-rows"),
        pytest.param("AAPL", 3379, dt.date(2004, 8, 19), dt.date(2018, 1, 19), id="AAPL"),
        pytest.param("GOOG", 3379, dt.date(2004, 8, 19), dt.date(2018, 1, 19), id="GOOG"),
    ],
)
def test_seed_loads_each_demo_file_as_daily_bars_at_midnight_utc(seeded, ticker, bars, first, last):
    stored = Bar.objects.filter(symbol__symbol=ticker, bar_size=BarSize.D1).order_by("timestamp")
    assert stored.count() == bars
    assert stored.first().timestamp == dt.datetime.combine(first, dt.time(0), tzinfo=dt.UTC)
    assert stored.last().timestamp == dt.datetime.combine(last, dt.time(0), tzinfo=dt.UTC)
    assert {bar.timestamp.time() for bar in stored.only("timestamp")} == {dt.time(0)}


@pytest.mark.django_db
def test_seed_keeps_the_file_prices_exactly(seeded):
    bar = Bar.objects.get(symbol__symbol="SPY", bar_size=BarSize.D1, timestamp=dt.datetime(2007, 12, 31, tzinfo=dt.UTC))
    # the file's row: 2007-12-31,147.100006,147.610001,146.059998,146.210007,118.624741,108126800
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (
        Decimal("147.100006"),
        Decimal("147.610001"),
        Decimal("146.059998"),
        Decimal("146.210007"),
        Decimal("108126800"),
    )


@pytest.mark.django_db
def test_seed_skips_and_names_the_rows_whose_open_is_below_the_low(seeded):
    spy = Bar.objects.filter(symbol__symbol="SPY")
    assert not spy.filter(timestamp__date__in=[dt.date(2015, 3, 5), dt.date(2015, 3, 30)]).exists()
    skipped = [line for line in seeded.splitlines() if "skipped" in line]
    assert len(skipped) == 2
    assert "line 1808: open 209.419998 is outside the low-high range" in skipped[0]  # 2015-03-05
    assert "line 1825: open 205.740005 is outside the low-high range" in skipped[1]  # 2015-03-30


@pytest.mark.django_db
def test_demo_strategy_runs_spy_every_minute_on_playback_data_with_the_simulated_broker_and_rules_analyst(seeded):
    strategy = Strategy.objects.select_related("symbol", "broker_connection", "owner").get(name="SPY demo")
    assert strategy.owner.username == "demo"
    assert strategy.symbol.symbol == "SPY"
    assert strategy.bar_size == BarSize.D1
    assert strategy.schedule_cron == "* * * * *"
    assert strategy.market_data_source == MarketDataSource.PLAYBACK
    assert strategy.analyst == Analyst.RULES
    assert strategy.broker_connection.kind == BrokerKind.SIMULATED
    assert strategy.broker_connection.owner == strategy.owner


@pytest.mark.django_db
def test_demo_strategy_uses_one_default_configuration_of_each_of_the_seven_indicators(seeded):
    strategy = Strategy.objects.get(name="SPY demo")
    links = strategy.strategy_indicators.select_related("indicator").order_by("position")
    assert {link.indicator.indicator_type: link.indicator.parameters for link in links} == {
        "RSI": {"period": 14},
        "MACD": {"fast": 12, "slow": 26, "signal": 9},
        "ATR": {"period": 14},
        "SMA": {"period": 20},
        "EMA": {"period": 20},
        "BB": {"period": 20, "std": 2.0},
        "SUPERTREND": {"period": 10, "multiplier": 3.0},
    }
    assert [link.position for link in links] == list(range(7))


def test_demo_data_and_its_licence_live_inside_the_project():
    data = demo_data_dir()

    assert data.is_relative_to(settings.BASE_DIR)
    assert {path.name for path in data.glob("*.csv")} == {
        "SPY_daily_2008-2017_yahoo_mplfinance.csv",
        "AAPL_daily_2004-2018_yahoo_mplfinance.csv",
        "GOOG_daily_2004-2018_yahoo_mplfinance.csv",
    }
    assert "Matplotlib Development Team" in (data / "licenses" / "mplfinance_LICENSE.txt").read_text()
    assert "mplfinance" in (data / "README.md").read_text()

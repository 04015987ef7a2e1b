"""Fresh data or no trade, by the exchange's calendar (exchange_calendars): holidays and half days for the market-open
check and DAY expiry, runs on a closed day SKIPPED market_closed with the holiday's name, a run whose last bar is
older than the strategy's limit SKIPPED stale_data, and a weekend or a holiday never counting as staleness."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from market.calendar import (
    day_order_session,
    holiday_name,
    is_market_open,
    is_session,
    open_time_between,
    session_close,
)
from market.clock import FixedClock, bar_age
from orders.models import Order
from tests.pipeline.conftest import bars_create, strategy_with_indicators, uptrend
from trading.environment import LiveEnvironment
from trading.executor import execute
from trading.models import ExecutionStatus, SkipReason, StrategyExecution
from trading.services import execution_start

pytestmark = pytest.mark.django_db
NY = "America/New_York"


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


# --- the calendar --------------------------------------------------------------------------------------------------


def test_holidays_have_names_and_weekends_say_so():
    assert holiday_name(dt.date(2026, 11, 26), NY) == "Thanksgiving"
    assert holiday_name(dt.date(2026, 12, 25), NY) == "Christmas"
    assert holiday_name(dt.date(2026, 4, 3), NY) == "Good Friday"
    assert holiday_name(dt.date(2026, 11, 28), NY) == "Saturday"
    assert holiday_name(dt.date(2026, 11, 27), NY) == ""
    assert not is_session(dt.date(2026, 11, 26), NY) and is_session(dt.date(2026, 11, 27), NY)


def test_a_half_day_closes_at_one_and_a_day_order_placed_after_it_works_the_next_session():
    black_friday = dt.date(2026, 11, 27)
    assert session_close(black_friday, NY) == utc(2026, 11, 27, 18, 0)  # 13:00 in New York
    assert is_market_open(utc(2026, 11, 27, 17, 30), NY)
    assert not is_market_open(utc(2026, 11, 27, 18, 30), NY)  # 13:30: closed early
    assert day_order_session(utc(2026, 11, 27, 18, 30), NY) == dt.date(2026, 11, 30)
    assert day_order_session(utc(2026, 11, 25, 22, 0), NY) == dt.date(2026, 11, 27)  # over Thanksgiving


def test_open_market_time_skips_nights_weekends_and_holidays():
    # Wednesday's close to Friday's (half day) close: Thursday is Thanksgiving, Friday trades 3.5 hours
    assert open_time_between(utc(2026, 11, 25, 21), utc(2026, 11, 27, 18), NY) == dt.timedelta(hours=3, minutes=30)
    # a daily bar from Wednesday is not stale on Monday morning: only the half day closed since
    assert bar_age(utc(2026, 11, 25), "1d", utc(2026, 11, 30, 15), NY) == 1
    assert bar_age(utc(2026, 11, 25), "1d", utc(2026, 12, 1, 22), NY) == 3
    # a 15-minute bar done at 09:45 on the half day: 3h15 of Friday and the first 15 minutes of Monday since
    assert bar_age(utc(2026, 11, 27, 14, 30), "15min", utc(2026, 11, 30, 14, 45), NY) == 14
    assert bar_age(utc(2018, 1, 19), "1d", utc(2026, 12, 2, 15), NY) > 2000


def test_a_symbol_of_an_unknown_zone_trades_weekdays_at_regular_hours_there():
    assert is_session(dt.date(2026, 11, 26), "UTC")  # no calendar for it: Thanksgiving is a weekday
    assert session_close(dt.date(2026, 11, 26), "UTC") == utc(2026, 11, 26, 16)


# --- the runs --------------------------------------------------------------------------------------------------------


@dataclass
class At(LiveEnvironment):
    """The live environment with the market clock stopped at one instant."""

    at: dt.datetime = utc(2026, 11, 26, 15)

    def clock(self, strategy):
        return FixedClock(self.at)


def run_at(strategy, at: dt.datetime) -> StrategyExecution:
    outcome = execute(execution_start(strategy=strategy, trigger="manual").pk, env=At(at=at))
    return StrategyExecution.objects.get(pk=outcome.execution_id)


def test_a_run_on_a_holiday_is_skipped_with_the_holidays_name(owner):
    strategy = strategy_with_indicators(owner, trading_days_only=True)

    execution = run_at(strategy, utc(2026, 11, 26, 15))

    assert execution.status == ExecutionStatus.SKIPPED
    assert execution.skip_reason == SkipReason.MARKET_CLOSED
    assert execution.error == "the market is closed on Thu 2026-11-26: Thanksgiving"


def test_a_strategy_that_runs_every_day_is_not_stopped_by_the_calendar(owner):
    strategy = strategy_with_indicators(owner, closes=False, trading_days_only=False)
    bars_create(strategy.symbol, closes=uptrend(), end=utc(2026, 11, 25))

    execution = run_at(strategy, utc(2026, 11, 26, 15))

    assert execution.skip_reason != SkipReason.MARKET_CLOSED
    assert execution.status == ExecutionStatus.COMPLETED


def test_old_stored_bars_skip_the_run_as_stale_and_nothing_is_ordered(owner):
    # the finding: a strategy on stored AAPL bars ending 2018-01-19, run on 2026-12-02, bought every 2 minutes
    strategy = strategy_with_indicators(owner, closes=False)
    bars_create(strategy.symbol, closes=uptrend(), end=utc(2018, 1, 19))

    execution = run_at(strategy, utc(2026, 12, 2, 15))

    assert execution.status == ExecutionStatus.SKIPPED
    assert execution.skip_reason == SkipReason.STALE_DATA
    assert execution.error.startswith("last bar 2018-01-19, market clock 2026-12-02 15:00 UTC: ")
    assert "more than the strategy's limit of 2" in execution.error
    assert not Order.objects.filter(strategy=strategy).exists()


@pytest.mark.parametrize(
    ("limit", "skipped"), [(2, True), (3, False)], ids=["three-sessions-old-limit-2", "three-sessions-old-limit-3"]
)
def test_the_freshness_limit_is_the_strategys_own(owner, limit, skipped):
    strategy = strategy_with_indicators(owner, closes=False, max_bar_age_bars=limit)
    bars_create(strategy.symbol, closes=uptrend(), end=utc(2026, 11, 24))  # Tuesday's bar

    # on Monday evening three sessions have closed since: Wednesday, Friday (a half day) and Monday
    execution = run_at(strategy, utc(2026, 11, 30, 22))

    assert (execution.skip_reason == SkipReason.STALE_DATA) is skipped


def test_a_weekend_does_not_make_fridays_bar_stale(owner):
    strategy = strategy_with_indicators(owner, closes=False)
    bars_create(strategy.symbol, closes=uptrend(), end=utc(2026, 11, 20))  # Friday

    execution = run_at(strategy, utc(2026, 11, 23, 15))  # Monday morning, before Monday's close

    assert execution.status == ExecutionStatus.COMPLETED, execution.error
    assert execution.skip_reason == ""

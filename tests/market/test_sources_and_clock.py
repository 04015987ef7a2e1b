"""Bar sources, the market clock, weekly bars and the playback feed's no-look-ahead rule."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest

from market.clock import FixedClock, WallClock, bar_close, clock_for_strategy, trading_day
from market.frames import resample_weekly
from market.models import Bar, MarketDataSource, PlaybackCursor
from market.playback import playback_advance, playback_reset, playback_window
from market.sources import (
    BarSourceError,
    PlaybackBarSource,
    PlaybackExhausted,
    StoredBarSource,
    register_bar_source,
    source_for_strategy,
)
from tests.factories import IndicatorConfigFactory, StrategyFactory, StrategyIndicatorFactory, SymbolFactory
from tests.market.conftest import daily_rows

UTC = dt.UTC


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# --- The clock --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "day"),
    [
        (utc(2024, 3, 8, 3, 0), dt.date(2024, 3, 7)),  # 22:00 the evening before in New York
        (utc(2024, 3, 8, 14, 30), dt.date(2024, 3, 8)),
        (utc(2024, 11, 4, 4, 30), dt.date(2024, 11, 3)),  # 23:30 EST, after the clocks went back
    ],
    ids=["utc-after-midnight", "session", "after-dst-change"],
)
def test_trading_day_is_counted_in_new_york(instant, day):
    assert trading_day(instant) == day
    assert FixedClock(instant).trading_day() == day


def test_fixed_clock_refuses_a_naive_time():
    with pytest.raises(ValueError, match="aware"):
        FixedClock(dt.datetime(2024, 1, 1))  # noqa: DTZ001


@pytest.mark.parametrize(
    ("stamp", "bar_size", "closes"),
    [
        (utc(2024, 3, 8), "1d", utc(2024, 3, 8, 21, 0)),  # 16:00 EST
        (utc(2024, 7, 8), "1d", utc(2024, 7, 8, 20, 0)),  # 16:00 EDT
        (utc(2024, 7, 8), "1w", utc(2024, 7, 12, 20, 0)),  # the Friday of that week
        (utc(2024, 7, 8, 13, 30), "1min", utc(2024, 7, 8, 13, 31)),
        (utc(2024, 7, 8, 12), "4h", utc(2024, 7, 8, 16)),
    ],
    ids=["daily-winter", "daily-summer", "weekly", "minute", "four-hours"],
)
def test_a_bar_is_complete_at_its_close(stamp, bar_size, closes):
    assert bar_close(stamp, bar_size) == closes


@pytest.mark.django_db
@pytest.mark.parametrize("source", [MarketDataSource.STORED, MarketDataSource.IBKR], ids=["stored", "ibkr"])
def test_live_sources_run_on_wall_clock_time(source):
    strategy = StrategyFactory(market_data_source=source)

    assert isinstance(clock_for_strategy(strategy), WallClock)


@pytest.mark.django_db
def test_playback_clock_reads_the_close_of_the_cursor_bar(stored_daily):
    strategy = playback_strategy(stored_daily(160))
    cursor = playback_advance(strategy=strategy)

    clock = clock_for_strategy(strategy)

    assert isinstance(clock, FixedClock)
    assert clock.now() == bar_close(cursor, "1d")
    assert clock.trading_day() == cursor.date()


# --- Stored bars ------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_stored_source_returns_the_latest_bars_up_to_end(stored_daily):
    symbol = stored_daily(30)
    end = utc(2024, 1, 31)

    frame = StoredBarSource().bars(symbol, "1d", end=end, limit=5)

    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert [stamp.date() for stamp in frame.index] == [dt.date(2024, 1, d) for d in (25, 26, 29, 30, 31)]
    assert frame.index.tz is not None and frame.index.is_monotonic_increasing
    assert frame["close"].dtype == float


@pytest.mark.django_db
def test_stored_latest_price_is_the_close_at_or_before_the_instant(stored_daily):
    symbol = stored_daily(10)

    assert StoredBarSource().latest_price("test", at=utc(2024, 1, 3, 12)) == Decimal("102")
    assert StoredBarSource().latest_price(symbol) == Decimal("109")


@pytest.mark.django_db
def test_an_unknown_symbol_is_a_clear_error():
    with pytest.raises(BarSourceError, match="unknown symbol 'NOPE'"):
        StoredBarSource().bars("NOPE", "1d")


@pytest.mark.django_db
def test_weekly_bars_are_resampled_from_daily_with_a_partial_last_week(stored_daily):
    symbol = stored_daily(13)  # Mon 2024-01-01 .. Wed 2024-01-17

    weekly = StoredBarSource().bars(symbol, "1w")

    assert [stamp.date() for stamp in weekly.index] == [dt.date(2024, 1, 1), dt.date(2024, 1, 8), dt.date(2024, 1, 15)]
    first = weekly.iloc[0]
    assert (first["open"], first["high"], first["low"], first["close"], first["volume"]) == (
        99.5,  # Monday's open
        105.0,  # Friday's high (close 104 + 1)
        99.0,  # Monday's low
        104.0,  # Friday's close
        float(sum(1000 + n for n in range(5))),
    )
    assert weekly["partial"].tolist() == [False, False, True]


def test_weekly_weeks_end_on_friday_and_weekend_bars_join_the_next_week():
    rows = daily_rows(10, start=dt.date(2024, 1, 5), weekdays_only=False)  # Fri 5th .. Sun 14th
    daily = pd.DataFrame(
        [[float(v) for v in row[1:]] for row in rows],
        index=pd.DatetimeIndex([row[0] for row in rows]),
        columns=["open", "high", "low", "close", "volume"],
    )

    weekly = resample_weekly(daily, as_of=dt.date(2024, 1, 14))

    # Fri 5th alone; Sat 6th .. Fri 12th; Sat 13th .. Sun 14th (week ending Fri 19th, not reached yet)
    assert [stamp.date() for stamp in weekly.index] == [dt.date(2024, 1, 5), dt.date(2024, 1, 6), dt.date(2024, 1, 13)]
    assert weekly["close"].tolist() == [100.0, 107.0, 109.0]
    assert weekly["partial"].tolist() == [False, False, True]


def test_a_week_that_reached_its_friday_is_complete():
    rows = daily_rows(5, start=dt.date(2024, 1, 8))  # Mon .. Fri
    daily = pd.DataFrame(
        [[float(v) for v in row[1:]] for row in rows],
        index=pd.DatetimeIndex([row[0] for row in rows]),
        columns=["open", "high", "low", "close", "volume"],
    )

    assert resample_weekly(daily)["partial"].tolist() == [False]


# --- Playback ---------------------------------------------------------------------------------------------------------


def playback_strategy(symbol, *, lookback=40, indicators=(("RSI", {"period": 14}),)):
    strategy = StrategyFactory(symbol=symbol, market_data_source=MarketDataSource.PLAYBACK, lookback_bars=lookback)
    for kind, params in indicators:
        config = IndicatorConfigFactory(owner=strategy.owner, indicator_type=kind, parameters=params)
        StrategyIndicatorFactory(strategy=strategy, indicator=config)
    return strategy


def stamps(symbol) -> list[dt.datetime]:
    return list(Bar.objects.for_symbol(symbol).of_size("1d").chronological().values_list("timestamp", flat=True))


@pytest.mark.django_db
def test_playback_starts_after_the_longest_warm_up_plus_the_chart_bars(stored_daily):
    symbol = stored_daily(200)
    strategy = playback_strategy(symbol, lookback=40, indicators=[("RSI", {"period": 14}), ("BB", {"period": 50})])

    first = playback_advance(strategy=strategy)

    assert playback_window(strategy) == 50 + 40
    assert first == stamps(symbol)[89]
    assert len(PlaybackBarSource(strategy).bars(symbol, "1d")) == 90


@pytest.mark.django_db
def test_a_strategy_without_indicators_warms_up_for_all_seven_defaults(stored_daily):
    strategy = playback_strategy(stored_daily(10), lookback=20, indicators=())

    assert playback_window(strategy) == 34 + 20  # MACD 12/26/9 needs 34 bars


@pytest.mark.django_db
def test_playback_advances_one_bar_per_run(stored_daily):
    symbol = stored_daily(120)
    strategy = playback_strategy(symbol)
    all_stamps = stamps(symbol)

    cursors = [playback_advance(strategy=strategy) for _ in range(3)]

    assert cursors == all_stamps[53:56]
    assert PlaybackCursor.objects.get(strategy=strategy).cursor == all_stamps[55]


@pytest.mark.django_db
def test_playback_never_returns_a_bar_after_the_cursor(stored_daily):
    symbol = stored_daily(120)
    strategy = playback_strategy(symbol)
    source = source_for_strategy(strategy)
    cursor = source.advance()
    far_future = utc(2030, 1, 1)

    daily = source.bars(symbol, "1d", end=far_future)
    limited = source.bars(symbol, "1d", end=far_future, limit=10)
    weekly = source.bars(symbol, "1w", end=far_future)
    price = source.latest_price(symbol, at=far_future)

    assert daily.index[-1] == cursor and limited.index[-1] == cursor
    assert (weekly.index <= cursor).all()
    assert price == Bar.objects.get(symbol=symbol, timestamp=cursor).close
    assert Bar.objects.filter(symbol=symbol, timestamp__gt=cursor).exists()  # the future is there, and hidden


@pytest.mark.django_db
def test_playback_weekly_marks_the_current_week_partial(stored_daily):
    symbol = stored_daily(120)
    strategy = playback_strategy(symbol)
    source = PlaybackBarSource(strategy)
    while source.advance().weekday() != 2:  # stop on a Wednesday
        pass

    weekly = source.bars(symbol, "1w")

    assert bool(weekly["partial"].iloc[-1]) is True
    assert weekly["close"].iloc[-1] == source.bars(symbol, "1d")["close"].iloc[-1]


@pytest.mark.django_db
def test_playback_at_the_end_of_the_data_is_exhausted(stored_daily):
    symbol = stored_daily(56)
    strategy = playback_strategy(symbol)
    assert playback_advance(strategy=strategy) == stamps(symbol)[53]
    playback_advance(strategy=strategy)
    last = playback_advance(strategy=strategy)

    with pytest.raises(PlaybackExhausted, match="playback data exhausted"):
        playback_advance(strategy=strategy)

    assert last == stamps(symbol)[-1]
    assert PlaybackCursor.objects.get(strategy=strategy).cursor == last


@pytest.mark.django_db
def test_playback_without_enough_history_says_how_many_bars_it_needs(stored_daily):
    strategy = playback_strategy(stored_daily(30))

    with pytest.raises(BarSourceError, match=r"needs at least 54 stored bars .* 30 are stored"):
        playback_advance(strategy=strategy)


@pytest.mark.django_db
def test_playback_reset_starts_over(stored_daily):
    strategy = playback_strategy(stored_daily(120))
    first = playback_advance(strategy=strategy)
    playback_advance(strategy=strategy)

    playback_reset(strategy=strategy)

    assert playback_advance(strategy=strategy) == first


@pytest.mark.django_db
def test_playback_serves_only_its_own_symbol(stored_daily):
    strategy = playback_strategy(stored_daily(120))
    other = SymbolFactory(symbol="OTHER")

    with pytest.raises(BarSourceError, match="replays TEST"):
        PlaybackBarSource(strategy).bars(other, "1d")


@pytest.mark.django_db
def test_two_strategies_keep_their_own_cursors(stored_daily):
    symbol = stored_daily(120)
    fast, slow = playback_strategy(symbol), playback_strategy(symbol)
    for _ in range(5):
        playback_advance(strategy=fast)

    playback_advance(strategy=slow)

    assert clock_for_strategy(fast).now() > clock_for_strategy(slow).now()


# --- Choosing a source ----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_source_for_strategy_picks_by_market_data_source(stored_daily):
    symbol = stored_daily(5)

    assert isinstance(source_for_strategy(StrategyFactory(symbol=symbol)), StoredBarSource)
    assert isinstance(
        source_for_strategy(StrategyFactory(symbol=symbol, market_data_source=MarketDataSource.PLAYBACK)),
        PlaybackBarSource,
    )


@pytest.mark.django_db
def test_the_ibkr_source_is_whatever_the_broker_app_registered(monkeypatch):
    from market import sources

    strategy = StrategyFactory(market_data_source=MarketDataSource.IBKR)
    monkeypatch.setattr(sources, "BAR_SOURCE_FACTORIES", {})
    with pytest.raises(BarSourceError, match="no bar source is installed for 'ibkr'"):
        source_for_strategy(strategy)

    marker = StoredBarSource()
    register_bar_source(MarketDataSource.IBKR, lambda s: marker)

    assert source_for_strategy(strategy) is marker


@pytest.mark.django_db(transaction=True)
def test_overlapping_runs_take_different_bars(stored_daily):
    import threading

    from django.db import connection

    symbol = stored_daily(120)
    strategy = playback_strategy(symbol)
    start = playback_advance(strategy=strategy)
    results, barrier = [], threading.Barrier(4)

    def run():
        try:
            barrier.wait()
            results.append(playback_advance(strategy=strategy))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    following = [stamp for stamp in stamps(symbol) if stamp > start][:4]
    assert sorted(results) == following


@pytest.mark.django_db
def test_staff_see_where_each_playback_stands_in_the_admin(client, staff_user, stored_daily):
    strategy = playback_strategy(stored_daily(120))
    cursor = playback_advance(strategy=strategy)
    client.force_login(staff_user)

    page = client.get("/admin/market/playbackcursor/")

    assert page.status_code == 200
    assert strategy.name in page.content.decode()
    assert f"{cursor:%b}" in page.content.decode()

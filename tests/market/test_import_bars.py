"""import_bars on every layout in shared/data (from excerpts), impossible rows, unreadable files, idempotence."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from market.importers import UnreadableFile, read_bars_file
from market.models import AssetType, Bar, Symbol
from market.services import bars_upsert, import_bars_file
from tests.factories import SymbolFactory
from tests.market.conftest import LAYOUTS

UTC = dt.UTC


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_bars", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


LAYOUT_CASES = [
    pytest.param(
        "SPY_yahoo_2015-02-20_to_2015-04-10.csv",
        ["--symbol", "SPY"],
        {
            "layout": "yahoo",
            "read": 35,
            "written": 33,
            "first": utc(2015, 2, 20),
            "last": utc(2015, 4, 10),
            # 2015-02-20: Close is stored, Adj Close (198.753555) ignored
            "bar": (utc(2015, 2, 20), "209.479996", "211.330002", "208.729996", "211.240005", "140896400"),
        },
        id="yahoo-with-adj-close",
    ),
    pytest.param(
        "SPY_pandas-ta_last40.csv",
        ["--symbol", "SPY"],
        {
            "layout": "pandas-ta",
            "read": 40,
            "written": 40,
            "first": utc(2020, 7, 6),
            "last": utc(2020, 8, 28),  # the last line has no newline
            "bar": (utc(2020, 8, 28), "349.44", "350.72", "348.15", "350.58", "48588940"),
        },
        id="pandas-ta-unnamed-index",
    ),
    pytest.param(
        "SP500_1min_2019-11-05_first45.csv",
        ["--symbol", "SPX", "--bar-size", "1min", "--tz", "America/New_York"],
        {
            "layout": "csv",
            "read": 45,
            "written": 45,
            "first": utc(2019, 11, 5, 14, 30),  # 09:30 New York (EST) is 14:30 UTC
            "last": utc(2019, 11, 5, 15, 14),
            # Date,Open,Close,High,Low,Volume: the columns are taken by name, not position
            "bar": (utc(2019, 11, 5, 14, 30), "3080.8", "3081.47", "3080.3", "3080.49", "2209795"),
        },
        id="1min-open-close-high-low-order",
    ),
    pytest.param(
        "BTCUSD_1h_newest48.csv",
        ["--symbol", "BTCUSD", "--bar-size", "1h"],
        {
            "layout": "cryptodatadownload",
            "read": 48,
            "written": 48,
            "first": utc(2019, 10, 15, 10),
            "last": utc(2019, 10, 17, 9),  # "2019-10-17 09-AM", the first data line: newest first
            # volume is the base currency (volume_btc 61.25), not the USD column (492394.56)
            "bar": (utc(2019, 10, 17, 9), "8051", "8056.83", "8021.23", "8035.88", "61.25"),
        },
        id="btc-hourly-preamble-am-pm-newest-first",
    ),
    pytest.param(
        "BTCUSD_1d_around_gap.csv",
        ["--symbol", "BTCUSD"],
        {
            "layout": "cryptodatadownload",
            "read": 11,
            "written": 11,
            "first": utc(2019, 3, 14),
            "last": utc(2019, 4, 5),
            "bar": (utc(2019, 3, 19), "3970.5", "3984.58", "3969.58", "3975.01", "361.69"),
        },
        id="btc-daily-preamble-missing-days",
    ),
    pytest.param(
        "INTC_yahoo_1995_first20.csv",
        ["--symbol", "INTC"],
        {
            "layout": "yahoo",
            "read": 20,
            "written": 20,
            "first": utc(1995, 1, 3),
            "last": utc(1995, 1, 30),
            "bar": (utc(1995, 1, 3), "3.976563", "4.000975", "3.9375", "3.984375", "41721600"),
        },
        id="yahoo-binary-fractions",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("filename", "args", "expected"), LAYOUT_CASES)
def test_every_layout_imports_with_its_quirks(filename, args, expected):
    out, _ = run(str(LAYOUTS / filename), *args)

    ticker, bar_size = args[1], args[args.index("--bar-size") + 1] if "--bar-size" in args else "1d"
    bars = Bar.objects.for_symbol(Symbol.objects.get(symbol=ticker)).of_size(bar_size)
    assert bars.count() == expected["written"]
    stamps = list(bars.chronological().values_list("timestamp", flat=True))
    assert (stamps[0], stamps[-1]) == (expected["first"], expected["last"])
    stamp, *values = expected["bar"]
    bar = bars.get(timestamp=stamp)
    assert [bar.open, bar.high, bar.low, bar.close, bar.volume] == [Decimal(v) for v in values]
    assert f"({expected['layout']} layout): read {expected['read']}, written {expected['written']}" in out


@pytest.mark.django_db
def test_yahoo_rows_with_open_below_low_are_reported_by_line_and_skipped():
    out, err = run(str(LAYOUTS / "SPY_yahoo_2015-02-20_to_2015-04-10.csv"), "--symbol", "SPY")

    assert err.splitlines() == [
        "skipped line 11: open 209.419998 is outside the low-high range 209.850006-210.800003",
        "skipped line 28: open 205.740005 is outside the low-high range 206.960007-208.610001",
    ]
    assert not Bar.objects.filter(timestamp__in=[utc(2015, 3, 5), utc(2015, 3, 30)]).exists()
    assert out.strip() == ("SPY 1d (yahoo layout): read 35, written 33, skipped 2, range 2015-02-20 .. 2015-04-10")


BAD_FILE = """Date,Open,High,Low,Close,Volume
2024-01-02,10,11,9,10.5,100
2024-01-03,10,9,11,10,100
2024-01-04,12,11,9,10,100
2024-01-05,10,11,9,8,100
2024-01-08,0,11,-1,10,100
2024-01-09,10,11,9,10,100
2024-01-10,10,11,9,10.2,100
2024-01-09,10,11,9,10.1,100
2024-13-01,10,11,9,10,100
2024-01-11,ten,11,9,10,100
2024-01-12,10,11,9,10,-5
2024-01-16,10,11,9,10
2024-01-17,10.5,11,9.5,10.7,200
"""


@pytest.mark.django_db
def test_impossible_rows_are_reported_with_line_numbers_and_never_kept(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(BAD_FILE)

    summary = import_bars_file(path, symbol="BAD")

    assert [str(bad) for bad in summary.skipped] == [
        "line 3: high 9 is below low 11",
        "line 4: open 12 is outside the low-high range 9-11",
        "line 5: close 8 is outside the low-high range 9-11",
        "line 6: open 0 is not a positive price",
        "line 7: duplicate timestamp 2024-01-09 (also line 9)",
        "line 9: duplicate timestamp 2024-01-09 (also line 7)",
        "line 10: cannot read the date '2024-13-01'",
        "line 11: open 'ten' is not a number",
        "line 12: volume -5 is negative",
        "line 13: 5 fields where the header has 6",
    ]
    stored = Bar.objects.for_symbol(Symbol.objects.get(symbol="BAD")).chronological()
    assert [bar.timestamp.date() for bar in stored] == [dt.date(2024, 1, 2), dt.date(2024, 1, 10), dt.date(2024, 1, 17)]
    assert (summary.read, summary.written) == (13, 3)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("", "no header line with open, high, low and close"),
        ("a,b,c\n1,2,3\n", "no header line with open, high, low and close"),
        ("Date,Open,High,Low,Close\n", "the file has a header but no rows"),
        ("Stamp,Open,High,Low,Close\n2024-01-02,1,2,1,2\n", "no date column"),
        (b"\xff\xfe\x00binary", "not a text (UTF-8) file"),
        ("Date,Open,High,Low,Close\n2024-01-02 10:00:00,1,2,1,2\n", "looks like intraday data, pass --bar-size"),
    ],
    ids=["missing", "empty", "no-ohlc-header", "header-only", "no-date-column", "binary", "intraday-as-daily"],
)
@pytest.mark.django_db
def test_an_unreadable_file_changes_nothing(tmp_path, content, message):
    SymbolFactory(symbol="KEEP", exchange="")
    path = tmp_path / "file.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    symbols_before = Symbol.objects.count()

    with pytest.raises(CommandError) as caught:
        run(str(path), "--symbol", "NEWSYM")

    assert message in str(caught.value)
    assert "Nothing was imported" in str(caught.value)
    assert Symbol.objects.count() == symbols_before
    assert not Bar.objects.exists()


@pytest.mark.django_db
def test_a_crypto_file_for_another_symbol_is_refused():
    with pytest.raises(UnreadableFile, match="the file holds BTCUSD, not ETHUSD"):
        import_bars_file(LAYOUTS / "BTCUSD_1d_around_gap.csv", symbol="ETHUSD")

    assert not Bar.objects.exists()


@pytest.mark.django_db
def test_a_crypto_import_creates_a_utc_crypto_symbol():
    import_bars_file(LAYOUTS / "BTCUSD_1d_around_gap.csv", symbol="btcusd")

    symbol = Symbol.objects.get(symbol="BTCUSD")
    assert (symbol.asset_type, symbol.time_zone, symbol.exchange) == (AssetType.CRYPTO, "UTC", "")


@pytest.mark.django_db
def test_importing_the_same_file_twice_changes_nothing():
    path = LAYOUTS / "SPY_pandas-ta_last40.csv"
    import_bars_file(path, symbol="SPY")
    first = list(Bar.objects.order_by("timestamp").values_list("pk", "timestamp", "close", "volume"))

    again = import_bars_file(path, symbol="SPY")

    assert again.written == 40
    assert list(Bar.objects.order_by("timestamp").values_list("pk", "timestamp", "close", "volume")) == first


@pytest.mark.django_db
def test_bars_upsert_updates_a_corrected_bar_in_place():
    symbol = SymbolFactory(symbol="FIX", exchange="")
    stamp = utc(2024, 3, 1)
    bars_upsert(symbol=symbol, bar_size="1d", rows=[(stamp, 10, 11, 9, 10, 100)])

    written = bars_upsert(
        symbol=symbol,
        bar_size="1d",
        rows=[{"timestamp": stamp, "open": 10, "high": 12, "low": 9, "close": 11.5, "volume": 250}],
    )

    assert written == 1
    bar = Bar.objects.get(symbol=symbol)
    assert (bar.high, bar.close, bar.volume) == (Decimal(12), Decimal("11.5"), Decimal(250))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ((utc(2024, 3, 1), 10, 9, 11, 10, 1), "high 9 is below low 11"),
        ((dt.datetime(2024, 3, 1), 10, 11, 9, 10, 1), "the timestamp must be an aware datetime"),  # noqa: DTZ001
        ((utc(2024, 3, 1, 14, 30), 10, 11, 9, 10, 1), "1d bars are keyed at 00:00 UTC of their session date"),
    ],
    ids=["high-below-low", "naive-time", "daily-not-midnight"],
)
@pytest.mark.django_db
def test_bars_upsert_rejects_an_impossible_bar_and_writes_nothing(row, message):
    symbol = SymbolFactory(symbol="REJ", exchange="")
    good = (utc(2024, 2, 29), 10, 11, 9, 10, 1)

    with pytest.raises(ValidationError, match=message):
        bars_upsert(symbol=symbol, bar_size="1d", rows=[good, row])

    assert not Bar.objects.exists()


def test_ambiguous_and_missing_local_times_are_bad_rows(tmp_path):
    path = tmp_path / "dst.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Volume\n"
        "2019-03-10 02:30:00,1,2,1,2,1\n"  # clocks jumped 02:00 -> 03:00 in New York
        "2019-11-03 01:30:00,1,2,1,2,1\n"  # 01:00-02:00 happened twice
        "2019-11-04 09:30:00,1,2,1,2,1\n"
    )

    parsed = read_bars_file(path, bar_size="1h", tz="America/New_York")

    assert [str(bad) for bad in parsed.bad_rows] == [
        "line 2: 2019-03-10 02:30 does not exist in America/New_York (clocks went forward)",
        "line 3: 2019-11-03 01:30 happens twice in America/New_York (clocks went back): ambiguous",
    ]
    assert [row.timestamp for row in parsed.rows] == [utc(2019, 11, 4, 14, 30)]


@pytest.mark.django_db
def test_a_large_file_shows_a_progress_bar(tmp_path):
    path = tmp_path / "large.csv"
    start = dt.date(2000, 1, 1)
    lines = ["Date,Open,High,Low,Close,Volume"] + [f"{start + dt.timedelta(days=n)},10,11,9,10,1" for n in range(6000)]
    path.write_text("\n".join(lines))

    out, err = run(str(path), "--symbol", "BIG")

    assert "writing [" in err and "6000/6000" in err
    assert "read 6000, written 6000, skipped 0, range 2000-01-01 .. 2016-06-04" in out


@pytest.mark.django_db
def test_a_small_file_shows_no_progress_bar():
    _, err = run(str(LAYOUTS / "INTC_yahoo_1995_first20.csv"), "--symbol", "INTC")

    assert "writing [" not in err


@pytest.mark.django_db
def test_bad_bar_size_and_time_zone_are_errors_where_typed():
    with pytest.raises(CommandError, match="unknown bar size '2h'"):
        run(str(LAYOUTS / "INTC_yahoo_1995_first20.csv"), "--symbol", "INTC", "--bar-size", "2h")
    with pytest.raises(CommandError, match="unknown time zone 'Mars/Olympus'"):
        run(
            str(LAYOUTS / "SP500_1min_2019-11-05_first45.csv"),
            "--symbol",
            "SPX",
            "--bar-size",
            "1min",
            "--tz",
            "Mars/Olympus",
        )
    assert not Bar.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("bar_size", ["1min", "1h"], ids=["as-1min", "as-1h"])
def test_a_daily_file_imported_as_intraday_is_refused(bar_size):
    # Given a Yahoo daily file, whose dates carry no time of day
    daily_file = LAYOUTS / "INTC_yahoo_1995_first20.csv"

    # When it is imported with an intraday bar size
    with pytest.raises(CommandError) as caught:
        run(str(daily_file), "--symbol", "INTC", "--bar-size", bar_size)

    # Then it is refused with the bar size to use, and nothing is written
    assert "looks like daily data" in str(caught.value)
    assert "pass --bar-size 1d or 1w" in str(caught.value)
    assert not Bar.objects.exists()
    assert not Symbol.objects.filter(symbol="INTC").exists()


@pytest.mark.django_db
def test_an_intraday_file_whose_first_stamp_is_midnight_still_imports(tmp_path):
    # Given a 1-hour file whose first bar starts at midnight, 00:00:00 written out
    path = tmp_path / "hourly.csv"
    path.write_text("Date,Open,High,Low,Close\n2024-01-02 00:00:00,1,2,1,2\n2024-01-02 01:00:00,2,3,2,3\n")

    # When it is imported as 1h bars
    run(str(path), "--symbol", "HOURLY", "--bar-size", "1h")

    # Then both bars are stored at their instants
    stored = Bar.objects.for_symbol(Symbol.objects.get(symbol="HOURLY")).chronological()
    assert [bar.timestamp for bar in stored] == [utc(2024, 1, 2, 0), utc(2024, 1, 2, 1)]


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_an_unopenable_path_is_named_once_in_the_error(tmp_path, kind):
    # Given a path that does not exist, or a directory
    path = tmp_path / "nope.csv" if kind == "missing" else tmp_path

    # When it is imported
    with pytest.raises(CommandError) as caught:
        run(str(path), "--symbol", "X")

    # Then the message names the path once, then says what is wrong with it
    message = str(caught.value)
    assert message.count(str(path)) == 1
    assert message.startswith(f"{path}: ")

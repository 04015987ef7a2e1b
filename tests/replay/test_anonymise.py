"""The anonymised context: no ticker or name anywhere, dates relative to the newest bar, numbers untouched."""

from __future__ import annotations

from signals_app.anonymise import anonymise_context

TIMES = ["2010-03-01T00:00:00+00:00", "2010-03-02T00:00:00+00:00", "2010-03-03T00:00:00+00:00"]


def _context() -> dict:
    bars = [
        {"time": t, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5 + i, "volume": 10} for i, t in enumerate(TIMES)
    ]
    return {
        "symbol": {"symbol": "SPY", "name": "SPDR S&P 500 ETF", "exchange": "ARCA", "currency": "USD"},
        "bar_size": "1d",
        "now": "2010-03-03T21:00:00+00:00",
        "trading_day": "2010-03-03",
        "last_close": 3.5,
        "last_bar_time": TIMES[-1],
        "bars": bars,
        "bars_table": "time open\n" + "\n".join(f"{t} {b['open']}" for t, b in zip(TIMES, bars, strict=True)),
        "indicators": [{"name": "SPY trend EMA", "recent": [{"time": TIMES[-1], "ema": 1.2}], "latest": {"ema": 1.2}}],
        "indicators_table": "SPY trend EMA (EMA): ema=1.2",
        "position": {"quantity": 5, "opened_at": TIMES[0]},
        "strategy": {"name": "SPY swing", "bar_size": "1d"},
    }


def test_anonymised_context_has_no_ticker_name_or_date_left():
    out = anonymise_context(_context())

    text = repr(out)
    for leak in ("SPY", "SPDR", "S&P", "ARCA", "2010"):
        assert leak not in text
    assert [bar["time"] for bar in out["bars"]] == ["t-2", "t-1", "t-0"]
    assert (out["now"], out["last_bar_time"], out["position"]["opened_at"]) == ("t", "t-0", "t-2")
    assert out["indicators"][0]["recent"][0]["time"] == "t-0"
    assert out["symbol"] == {"symbol": "ASSET", "name": "", "exchange": "", "currency": "USD", "asset_type": ""}


def test_anonymising_keeps_every_number_and_the_table_columns():
    context = _context()
    out = anonymise_context(context)

    assert [bar["close"] for bar in out["bars"]] == [bar["close"] for bar in context["bars"]]
    assert out["last_close"] == 3.5 and out["indicators"][0]["latest"] == {"ema": 1.2}
    lines = out["bars_table"].splitlines()[1:]
    assert lines[0].startswith("t-2 ") and len({line.index(" 1.0") for line in lines}) == 1

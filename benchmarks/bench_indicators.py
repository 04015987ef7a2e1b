"""Our seven indicators against the six `ta` classes called plainly, over the same 5,000 daily bars, same run.

Target: ours at least 3x faster (ta's ATR is a Python loop over `iloc`; ours is the same Wilder recursion through
pandas' ewm, and Supertrend is built on it). TA-Lib's time for the same six is printed as the floor when the
`ta-lib` wheel is installed (requirements-dev.txt).

Run: .venv/bin/python benchmarks/bench_indicators.py   (exit status 1 when the target is missed)
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import time
from pathlib import Path

import django
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from ta.momentum import RSIIndicator  # noqa: E402
from ta.trend import MACD, EMAIndicator, SMAIndicator  # noqa: E402
from ta.volatility import AverageTrueRange, BollingerBands  # noqa: E402

from market.indicators import REGISTRY, compute  # noqa: E402

BARS = 5000
RUNS = 25
TARGET = 3.0
SPY_FILE = ROOT.parent / "shared" / "data" / "SPY_daily_1999-2020_pandas-ta.csv"


def load_bars() -> tuple[pd.DataFrame, str]:
    if SPY_FILE.exists():
        frame = pd.read_csv(SPY_FILE, index_col=0, parse_dates=["date"]).set_index("date").iloc[-BARS:]
        return frame.astype(float), f"SPY daily, {SPY_FILE.name}"
    rng = np.random.default_rng(42)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, BARS)))
    high = close * (1 + rng.uniform(0, 0.01, BARS))
    low = close * (1 - rng.uniform(0, 0.01, BARS))
    index = pd.date_range("2000-01-03", periods=BARS, freq="B")
    frame = pd.DataFrame({"open": close, "high": high, "low": low, "close": close, "volume": 1e6}, index=index)
    return frame, "a seeded random walk (the SPY file is not here)"


def ours(frame: pd.DataFrame) -> None:
    for name in REGISTRY:
        compute(frame, name, {})


def ta_plain(frame: pd.DataFrame) -> None:
    close, high, low = frame["close"], frame["high"], frame["low"]
    RSIIndicator(close).rsi()
    macd = MACD(close)
    macd.macd(), macd.macd_signal(), macd.macd_diff()
    AverageTrueRange(high, low, close).average_true_range()
    SMAIndicator(close, 20).sma_indicator()
    EMAIndicator(close, 20).ema_indicator()
    bands = BollingerBands(close)
    bands.bollinger_hband(), bands.bollinger_mavg(), bands.bollinger_lband()


def talib_runner():
    try:
        import talib
    except ImportError:
        return None

    def run(frame: pd.DataFrame) -> None:
        close, high, low = (frame[c].to_numpy(dtype=float) for c in ("close", "high", "low"))
        talib.RSI(close, 14)
        talib.MACD(close, 12, 26, 9)
        talib.ATR(high, low, close, 14)
        talib.SMA(close, 20)
        talib.EMA(close, 20)
        talib.BBANDS(close, 20, 2, 2)

    return run


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> int:
    frame, origin = load_bars()
    contenders = {"ours (7)": ours, "ta (6)": ta_plain}
    talib = talib_runner()
    if talib:
        contenders["TA-Lib (6)"] = talib
    for run in contenders.values():  # warm caches and imports
        run(frame)
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(RUNS):  # interleaved, so a busy neighbour slows every contender alike
        for name, run in contenders.items():
            gc.disable()  # as timeit does: one contender's garbage is not collected on another's clock
            started = time.perf_counter()
            run(frame)
            samples[name].append(time.perf_counter() - started)
            gc.enable()

    # Same numbers as ta's loop, not just faster: ATR from the seed on.
    ta_atr = AverageTrueRange(frame["high"], frame["low"], frame["close"]).average_true_range().to_numpy()[13:]
    our_atr = compute(frame, "ATR", {})["atr"].to_numpy()[13:]
    atr_gap = float(np.max(np.abs(ta_atr - our_atr)))

    print(f"indicators over {len(frame)} bars of {origin}; median of {RUNS} interleaved runs")
    for name, times in samples.items():
        print(f"  {name:<11} {median_ms(times):8.2f} ms")
    if not talib:
        print("  TA-Lib      unavailable (the ta-lib wheel is not installed)")
    ratio = median_ms(samples["ta (6)"]) / median_ms(samples["ours (7)"])
    print(f"  ATR: largest difference from ta's loop {atr_gap:.2e}")
    verdict = "ok" if ratio >= TARGET else "MISSED"
    print(f"speed-up over ta: {ratio:.1f}x (target >= {TARGET:.0f}x) {verdict}")
    return 0 if ratio >= TARGET and atr_gap < 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())

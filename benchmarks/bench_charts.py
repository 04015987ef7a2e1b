"""Chart rendering: ours against the original design's way, 120 daily bars with volume and all seven indicators.

Ours: market.charts.render_chart, drawn at the LLM's native 1400x788 and saved at 100 dpi as it is.
Original (design step 7): mpf.plot(type="candle", style="charles", volume=True, addplot=..., figratio=(16, 9),
figscale=1.2) saved with dpi=300 and bbox_inches="tight". Its indicators are computed beforehand and not timed;
ours computes them inside the timed call, so the comparison leans against us.

Target: median of at least 7 runs each, ours <= 0.6x the original. Prints both, the ratio, and each PNG's pixel
size and token estimate (width x height / 750; the API would first shrink the original's image to fit 1568 px).

Run: .venv/bin/python benchmarks/bench_charts.py   (exit status 1 when the target is missed)
"""

from __future__ import annotations

import io
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

import mplfinance as mpf  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402

from market.charts import png_size, render_chart  # noqa: E402
from market.indicators import REGISTRY, compute  # noqa: E402

RUNS = 9
BARS = 120
HISTORY = 300  # bars behind the drawn ones, so every indicator has settled
TARGET = 0.6
SPY_FILE = ROOT.parent / "shared" / "data" / "SPY_daily_2008-2017_yahoo_mplfinance.csv"
OUTPUT = ROOT / "benchmarks" / "output"
PANELS = {"RSI": 2, "MACD": 3, "ATR": 4}  # the original's _get_panel: price 0, volume 1, oscillators below


def load_bars() -> tuple[pd.DataFrame, str]:
    if SPY_FILE.exists():
        frame = pd.read_csv(SPY_FILE, index_col="Date", parse_dates=True).rename(columns=str.lower)
        frame = frame[["open", "high", "low", "close", "volume"]].astype(float).iloc[-HISTORY:]
        frame.index = frame.index.tz_localize("UTC")
        return frame, f"SPY daily, {SPY_FILE.name}"
    rng = np.random.default_rng(7)
    close = 250 + np.cumsum(rng.normal(0, 2, HISTORY))
    open_ = close + rng.normal(0, 1, HISTORY)
    frame = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + rng.uniform(0.1, 2, HISTORY),
            "low": np.minimum(open_, close) - rng.uniform(0.1, 2, HISTORY),
            "close": close,
            "volume": rng.uniform(5e7, 1.5e8, HISTORY),
        },
        index=pd.date_range("2017-01-02", periods=HISTORY, freq="B", tz="UTC"),
    )
    return frame, "a seeded random walk (the SPY file is not here)"


def ours(frame: pd.DataFrame) -> bytes:
    return render_chart(frame, symbol="SPY", bar_size="1d", bars=BARS)


def original_inputs(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    series: dict[str, pd.Series] = {}
    for name in REGISTRY:
        values = compute(frame, name, {}).iloc[-BARS:]
        for column in values.columns:
            if column != "direction":
                series[f"{name}.{column}"] = values[column]
    data = frame.iloc[-BARS:].copy()
    data.index = data.index.tz_localize(None)
    return data, series


def original(data: pd.DataFrame, series: dict[str, pd.Series]) -> bytes:
    addplot = [
        mpf.make_addplot(values.to_numpy(), panel=PANELS.get(name.split(".")[0], 0)) for name, values in series.items()
    ]
    fig, _ = mpf.plot(
        data,
        type="candle",
        style="charles",
        title="Strategy 1 - Daily Chart",
        volume=True,
        addplot=addplot,
        returnfig=True,
        figratio=(16, 9),
        figscale=1.2,
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=300, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def main() -> int:
    frame, origin = load_bars()
    data, series = original_inputs(frame)
    contenders = {"ours": lambda: ours(frame), "original": lambda: original(data, series)}
    images = {name: run() for name, run in contenders.items()}  # warm-up, and the images to report
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(RUNS):  # interleaved, so a busy neighbour slows both alike
        for name, run in contenders.items():
            started = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - started)

    OUTPUT.mkdir(parents=True, exist_ok=True)
    print(f"{BARS} daily bars with volume and all seven indicators, {origin}; median of {RUNS} interleaved runs")
    medians = {}
    for name, png in images.items():
        (OUTPUT / f"chart_{name}.png").write_bytes(png)
        width, height = png_size(png)
        medians[name] = statistics.median(samples[name])
        print(
            f"  {name:<9} {medians[name] * 1000:8.1f} ms  {width}x{height} px  {len(png) / 1024:7.1f} KiB  "
            f"~{width * height / 750:,.0f} tokens"
        )
    ratio = medians["ours"] / medians["original"]
    verdict = "ok" if ratio <= TARGET else "MISSED"
    print(f"ours / original: {ratio:.2f}x (target <= {TARGET}x) {verdict}; images in {OUTPUT.relative_to(ROOT)}/")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())

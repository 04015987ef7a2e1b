"""Charts: the LLM's native size, no font warnings, stored with their hash and size (local files and S3)."""

from __future__ import annotations

import hashlib
import io
import logging
import warnings

import numpy as np
import pandas as pd
import pytest
from django.core.files.storage import default_storage
from matplotlib import font_manager
from PIL import Image

from market.charts import MAX_LONG_EDGE, MAX_PIXELS, png_size, render_chart, store_chart
from market.frames import resample_weekly
from market.indicators import compute


def bars(count: int = 200, *, freq: str = "B", seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 300 + np.cumsum(rng.normal(0, 2, count))
    open_ = close + rng.normal(0, 1, count)
    high = np.maximum(open_, close) + rng.uniform(0.1, 2, count)
    low = np.minimum(open_, close) - rng.uniform(0.1, 2, count)
    index = pd.date_range("2023-01-02", periods=count, freq=freq, tz="UTC")
    volume = rng.uniform(5e7, 1.5e8, count)
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index)


@pytest.fixture(scope="module")
def daily_png() -> bytes:
    return render_chart(bars(), symbol="spy", bar_size="1d", bars=120)


def test_chart_is_a_png_at_the_llm_native_size(daily_png):
    image = Image.open(io.BytesIO(daily_png))

    assert image.format == "PNG"
    assert image.size == (1400, 788) == png_size(daily_png)
    assert max(image.size) <= MAX_LONG_EDGE and image.size[0] * image.size[1] <= MAX_PIXELS


def test_chart_is_not_blank(daily_png):
    pixels = np.asarray(Image.open(io.BytesIO(daily_png)).convert("RGB"))

    # candles in both colours and indicator lines: many distinct colours, and most of the canvas still white
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
    assert (pixels == 255).all(axis=2).mean() > 0.5


def test_rendering_logs_no_font_warnings(caplog):
    # matplotlib warns about a missing font or weight once, then answers from a cache: empty it so this test sees
    # every lookup even after other tests have drawn charts in this process.
    font_manager.FontManager._findfont_cached.cache_clear()
    caplog.set_level(logging.DEBUG, logger="matplotlib")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        render_chart(bars(), symbol="SPY", bar_size="1d", bars=120)
        render_chart(resample_weekly(bars(400)), symbol="SPY", bar_size="1w", bars=60)

    font_records = [r for r in caplog.records if "font" in r.name and r.levelno >= logging.WARNING]
    assert font_records == []
    assert [
        str(w.message) for w in caught if "font" in str(w.message).lower() or "glyph" in str(w.message).lower()
    ] == []


@pytest.mark.parametrize(
    "indicators",
    [
        [("RSI", {})],
        [("SUPERTREND", {"period": 7, "multiplier": 2})],
        [("MACD", {}), ("ATR", {"period": 5})],
        [],
    ],
    ids=["rsi-panel", "supertrend-only", "macd-and-atr", "candles-only"],
)
def test_any_subset_of_indicators_renders_at_the_same_size(indicators):
    png = render_chart(bars(), symbol="SPY", bar_size="1d", indicators=indicators, bars=100)

    assert png_size(png) == (1400, 788)


def test_intraday_and_too_short_histories_render():
    minute = bars(90, freq="min")

    png = render_chart(minute, symbol="SPX", bar_size="1min")  # shorter than MACD's warm-up: empty lines, no error

    assert png_size(png) == (1400, 788)


def test_precomputed_indicator_frames_are_drawn_as_given():
    frame = bars(150)
    precomputed = {"My RSI": compute(frame, "RSI", {"period": 9}), "Trend": compute(frame, "SUPERTREND", {})}

    png = render_chart(frame.iloc[-120:], bar_size="1d", indicators=precomputed, title="SPY 1d")

    assert png_size(png) == (1400, 788)


def test_a_frame_that_is_no_indicator_is_refused():
    frame = bars(50)

    with pytest.raises(ValueError, match="cannot tell which indicator"):
        render_chart(frame, bar_size="1d", indicators={"x": pd.DataFrame({"foo": frame["close"]})})


@pytest.mark.parametrize(("width", "height"), [(1600, 900), (1200, 1000)], ids=["long-edge", "area"])
def test_sizes_the_llm_would_downscale_are_refused(width, height):
    with pytest.raises(ValueError, match="at most 1568 px"):
        render_chart(bars(), symbol="SPY", bar_size="1d", width=width, height=height)


@pytest.mark.django_db
def test_store_chart_saves_through_default_storage_with_hash_and_size(daily_png, settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }

    stored = store_chart(daily_png, key_prefix="charts/7/abc/")

    digest = hashlib.sha256(daily_png).hexdigest()
    assert stored == {
        "key": f"charts/7/abc/{digest}.png",
        "sha256": digest,
        "bytes": len(daily_png),
        "width": 1400,
        "height": 788,
    }
    assert (tmp_path / stored["key"]).read_bytes() == daily_png


def test_store_chart_on_s3_writes_the_object_once(daily_png, s3_storage):
    first = store_chart(daily_png, key_prefix="charts/1/run")
    again = store_chart(daily_png, key_prefix="charts/1/run")

    assert first == again
    assert s3_storage.keys() == [first["key"]]
    body = s3_storage.client.get_object(Bucket=s3_storage.bucket, Key=first["key"])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == first["sha256"]
    with default_storage.open(first["key"]) as handle:
        assert handle.read() == daily_png


def test_store_chart_refuses_what_is_not_a_png():
    with pytest.raises(ValueError, match="not a PNG"):
        store_chart(b"GIF89a...", key_prefix="charts")

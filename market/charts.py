"""Candlestick charts for the analyst, drawn at the size the LLM reads them, and stored through Django's storage.

Claude downsizes any image whose long edge is over 1568 px or whose area is over ~1.15 megapixels, so a chart is
drawn at 1400x788 (16:9) and saved at that size exactly: 100 dpi, no `bbox_inches="tight"` (which would crop to a
different size), no wasted pixels. Fonts are DejaVu Sans, which ships with matplotlib, at weights it has.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Iterable, Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless workers; must precede pyplot/mplfinance

import mplfinance as mpf  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from django.core.files.base import ContentFile  # noqa: E402
from django.core.files.storage import default_storage  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from market.indicators import PRICE_PANEL, REGISTRY, compute, indicator_spec, validate_config  # noqa: E402

WIDTH = 1400
HEIGHT = 788
DPI = 100
MAX_LONG_EDGE = 1568
MAX_PIXELS = 1_150_000
FONT = "DejaVu Sans"

UP, DOWN = "#26a69a", "#ef5350"
COLOURS = {
    "sma": "#1f77b4",
    "ema": "#ff7f0e",
    "bb": "#7f7f7f",
    "rsi": "#7e57c2",
    "macd": "#1f77b4",
    "signal": "#ff7f0e",
    "atr": "#6d4c41",
}

_STYLE: dict | None = None


def chart_style() -> dict:
    global _STYLE
    if _STYLE is None:
        _STYLE = mpf.make_mpf_style(
            base_mpf_style="charles",
            marketcolors=mpf.make_marketcolors(up=UP, down=DOWN, edge="inherit", wick="inherit", volume="in"),
            gridstyle=":",
            gridcolor="#d0d0d0",
            facecolor="white",
            rc={
                "font.family": FONT,
                "font.weight": "normal",
                "font.size": 10,
                "axes.titleweight": "bold",
                "axes.labelweight": "normal",
                "figure.titleweight": "bold",
                "axes.labelsize": 9,
                "xtick.labelsize": 9,
                "ytick.labelsize": 9,
                "legend.fontsize": 8,
            },
        )
    return _STYLE


IndicatorList = Iterable[tuple[str, Mapping[str, Any] | None] | Any]


def default_indicators() -> list[tuple[str, dict]]:
    return [(name, {}) for name in REGISTRY]


def render_chart(
    df: pd.DataFrame,
    *,
    symbol: str = "",
    bar_size: str,
    indicators: IndicatorList | Mapping[str, pd.DataFrame] | None = None,
    bars: int | None = None,
    title: str | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> bytes:
    """A PNG of candles with volume and the indicators, `width` x `height` pixels.

    `df`: bars (open, high, low, close, volume; ascending UTC index), including any warm-up history: indicators are
    computed over all of it and the last `bars` rows are drawn. `indicators` is one of
    - (type, params) pairs, or objects with `indicator_type` and `parameters` (IndicatorConfig), computed here;
    - a mapping of label -> frame already computed by `market.indicators.compute` (aligned on `df`'s index; the
      type is recognised by its columns);
    - None: all seven at their defaults.
    SMA, EMA, Bollinger and Supertrend go on the price panel; RSI, MACD and ATR get panels of their own. The title
    is "SYMBOL · bar size · first to last" (`title` replaces "SYMBOL · bar size"; the date range is always added)."""
    if max(width, height) > MAX_LONG_EDGE or width * height > MAX_PIXELS or min(width, height) < 200:
        raise ValueError(f"{width}x{height}: charts are at most {MAX_LONG_EDGE} px long and {MAX_PIXELS} pixels")
    if df.empty:
        raise ValueError(f"no {bar_size} bars to draw for {symbol}")
    computed = _computed(df, indicators)
    view = df.iloc[-bars:] if bars else df
    rows = len(view)
    daily = bar_size in {"1d", "1w"}
    plot_frame = view[["open", "high", "low", "close", "volume"]].copy()
    plot_frame.index = _naive_index(view.index)

    panels = {PRICE_PANEL: 0, "volume": 1}
    for name, _, _ in computed:
        panel = REGISTRY[name].panel
        if panel not in panels:
            panels[panel] = len(panels)
    volume = plot_frame["volume"].to_numpy(dtype=float)
    # Bars (volume, MACD histogram) are drawn as one LineCollection each after mpf.plot: matplotlib's bar() makes a
    # Rectangle per bar, which was most of the rendering time. An invisible line gives the volume panel its axes.
    addplots: list[dict] = [
        mpf.make_addplot(volume, panel=1, color="white", alpha=0.0, width=0.1, ylabel="Volume", secondary_y=False)
    ]
    rising = (plot_frame["close"] >= plot_frame["open"]).to_numpy()
    histograms: list[tuple[int, np.ndarray, list[str]]] = [(1, volume, [UP if up else DOWN for up in rising])]
    fill_between: list[dict] = []
    for name, params, values in computed:
        _add(name, params, values.iloc[-rows:], panels, addplots, fill_between, histograms)

    ratios = [6, 1.4] + [2] * (len(panels) - 2)
    extra = {"fill_between": fill_between} if fill_between else {}
    fig, axes = mpf.plot(
        plot_frame,
        type="candle",
        style=chart_style(),
        addplot=addplots,
        **extra,
        panel_ratios=ratios,
        figsize=(width / DPI, height / DPI),
        datetime_format="%Y-%m-%d" if daily else "%m-%d %H:%M",
        xrotation=0,
        ylabel="Price",
        tight_layout=True,
        scale_padding={"left": 0.3, "right": 2.0, "top": 1.6, "bottom": 0.6},
        warn_too_much_data=10_000,
        returnfig=True,
        closefig=False,
    )
    try:
        heading = _title(title or "  ·  ".join(part for part in (symbol.upper(), bar_size) if part), bar_size, view)
        fig.suptitle(heading, fontsize=13, fontweight="bold", x=0.5, y=0.985)
        _draw_histograms(fig, axes, histograms, rows)
        axes[2].set_ylim(0, max(float(np.nanmax(volume)), 1.0) * 1.1)
        axes[2].yaxis.set_major_formatter(FuncFormatter(_human_volume))
        # Neighbouring panels touch: drop the end ticks whose labels would collide ("0" over "100").
        for panel, index in panels.items():
            if panel == "rsi":
                axes[2 * index].set_yticks([30, 50, 70])
            elif index > 0:
                axes[2 * index].yaxis.set_major_locator(MaxNLocator(nbins=4, prune="both"))
        for ax in axes[::2]:
            handles, labels = ax.get_legend_handles_labels()
            if labels:
                ax.legend(handles, labels, loc="upper left", frameon=False, ncol=min(len(labels), 5))
        buffer = io.BytesIO()
        # zlib level 1 instead of 6: a fraction of the encoding time for a slightly larger file (a chart is mostly
        # flat colour); the LLM is billed by pixels, not bytes.
        fig.savefig(buffer, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})
    finally:
        plt.close(fig)
    return buffer.getvalue()


def _computed(df: pd.DataFrame, indicators) -> list[tuple[str, dict, pd.DataFrame]]:
    """(type, params, values aligned on df) for each indicator to draw."""
    if indicators is None:
        indicators = default_indicators()
    if isinstance(indicators, Mapping):
        return [(_type_of(frame), {"label": label}, frame.reindex(df.index)) for label, frame in indicators.items()]
    computed: list[tuple[str, dict, pd.DataFrame]] = []
    for item in indicators:
        if isinstance(item, tuple | list):
            name, params = item
        else:
            name, params = item.indicator_type, item.parameters
        spec = indicator_spec(name)
        params = validate_config(spec.name, params)
        computed.append((spec.name, params, compute(df, spec.name, params)))
    return computed


def _type_of(frame: pd.DataFrame) -> str:
    columns = tuple(frame.columns)
    for spec in REGISTRY.values():
        if columns == spec.columns:
            return spec.name
    raise ValueError(f"cannot tell which indicator has the columns {', '.join(map(str, columns))}")


def _naive_index(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return index.tz_convert("UTC").tz_localize(None) if index.tz is not None else index


def _series(values: pd.Series) -> np.ndarray | None:
    array = values.to_numpy(dtype=float)
    return array if np.isfinite(array).any() else None


def _label(name: str, params: dict) -> str:
    if "label" in params:
        return str(params["label"])
    shown = ", ".join(f"{value:g}" for value in params.values())
    return f"{name.title() if name == 'SUPERTREND' else name} {shown}"


def _draw_histograms(fig, axes, histograms: list, rows: int) -> None:
    """Vertical bars from zero, 70% of the bar spacing wide. mplfinance puts bar i at x = i."""
    ax_width_px = axes[0].get_position().width * fig.get_figwidth() * DPI
    line_width = max(0.7 * ax_width_px / max(rows, 1), 1.0) * 72 / DPI
    x = np.arange(rows)
    for panel, values, colours in histograms:
        finite = np.isfinite(values)
        axes[2 * panel].vlines(
            x[finite], 0, values[finite], colors=np.asarray(colours)[finite], linewidth=line_width, alpha=0.8
        )


def _add(
    name: str, params: dict, values: pd.DataFrame, panels: dict, addplots: list, fills: list, histograms: list
) -> None:
    label = _label(name, params)

    def line(column: str, label: str | None, colour: str, panel: int = 0, **style) -> None:
        data = _series(values[column])
        if data is not None:
            if label:
                style["label"] = label
            width = style.pop("width", 1.2)
            addplots.append(mpf.make_addplot(data, panel=panel, color=colour, width=width, secondary_y=False, **style))

    if name == "SMA":
        line("sma", label, COLOURS["sma"])
    elif name == "EMA":
        line("ema", label, COLOURS["ema"])
    elif name == "BB":
        line("upper", label, COLOURS["bb"], width=0.8, linestyle="--")
        line("middle", None, COLOURS["bb"], width=0.8, linestyle=":")
        line("lower", None, COLOURS["bb"], width=0.8, linestyle="--")
        upper, lower = values["upper"].to_numpy(dtype=float), values["lower"].to_numpy(dtype=float)
        if np.isfinite(upper).any():
            fills.append({"y1": upper, "y2": lower, "where": np.isfinite(upper), "alpha": 0.07, "color": COLOURS["bb"]})
    elif name == "SUPERTREND":
        direction = values["direction"].to_numpy(dtype=float)
        line_values = values["supertrend"].to_numpy(dtype=float)
        for sign, colour, text in ((1, UP, f"{label} up"), (-1, DOWN, f"{label} down")):
            data = np.where(direction == sign, line_values, np.nan)
            if np.isfinite(data).any():
                addplots.append(mpf.make_addplot(data, panel=0, color=colour, width=1.6, label=text, secondary_y=False))
    elif name == "RSI":
        panel = panels["rsi"]
        line("rsi", label, COLOURS["rsi"], panel, ylabel="RSI", ylim=(0, 100))
        for level in (30, 70):
            addplots.append(
                mpf.make_addplot(
                    np.full(len(values), float(level)),
                    panel=panel,
                    color="#9e9e9e",
                    width=0.7,
                    linestyle="--",
                    secondary_y=False,
                )
            )
    elif name == "MACD":
        panel = panels["macd"]
        histogram = _series(values["histogram"])
        if histogram is not None:
            colours = [UP if value >= 0 else DOWN for value in np.nan_to_num(histogram)]
            histograms.append((panel, histogram, colours))
        line("macd", label, COLOURS["macd"], panel, ylabel="MACD")
        line("signal", "signal", COLOURS["signal"], panel)
    elif name == "ATR":
        line("atr", label, COLOURS["atr"], panels["atr"], ylabel="ATR")


def _human_volume(value: float, _position: int) -> str:
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def _title(prefix: str, bar_size: str, view: pd.DataFrame) -> str:
    fmt = "%Y-%m-%d" if bar_size in {"1d", "1w"} else "%Y-%m-%d %H:%M UTC"
    first, last = view.index[0], view.index[-1]
    partial = " (last week partial)" if "partial" in view and bool(view["partial"].iloc[-1]) else ""
    return f"{prefix}  ·  {first:{fmt}} to {last:{fmt}}{partial}"


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from the PNG header."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return struct.unpack(">II", png[16:24])


def store_chart(png: bytes, *, key_prefix: str) -> dict:
    """Save a PNG through Django's default storage (S3/MinIO when configured) under `key_prefix`, named by its
    sha256 so the same image is stored once. Returns key, sha256, bytes, width and height."""
    width, height = png_size(png)
    digest = hashlib.sha256(png).hexdigest()
    key = f"{key_prefix.strip('/')}/{digest}.png"
    if not default_storage.exists(key):
        key = default_storage.save(key, ContentFile(png))
    return {"key": key, "sha256": digest, "bytes": len(png), "width": width, "height": height}

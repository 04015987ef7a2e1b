"""The seven indicators: a registry of their parameters, validation of a configuration, and the computations.

Every computation is causal: the value at bar t uses bars <= t only, so a chart or a prompt built at a playback
cursor never sees the future. RSI, MACD, SMA, EMA and Bollinger Bands come from the `ta` library (vectorised
pandas). ta's ATR is a Python loop over `iloc`, so ATR here is the same Wilder average done with pandas' ewm, and
Supertrend is built on top of it.

Output columns are part of the contract (the `indicators --json` keys, the chart legends, the prompts).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from django.core.exceptions import ValidationError
from ta.momentum import RSIIndicator
from ta.trend import MACD, EMAIndicator, SMAIndicator
from ta.volatility import BollingerBands

PRICE_PANEL = "price"


@dataclass(frozen=True)
class Param:
    name: str
    kind: type  # int or float
    default: int | float
    minimum: int | float
    maximum: int | float
    help: str = ""

    def describe(self) -> dict[str, Any]:
        return {
            "type": self.kind.__name__,
            "min": self.minimum,
            "max": self.maximum,
            "default": self.default,
            "help": self.help,
        }

    def clean(self, indicator: str, raw: Any) -> int | float:
        """The value as `kind`, or a ValidationError naming the indicator, the parameter and the allowed range."""
        expected = "a whole number" if self.kind is int else "a number"
        where = f"{indicator} {self.name}"
        value = _to_number(raw)
        if value is None:
            raise ValidationError(
                f"{where} must be {expected} between {self.minimum} and {self.maximum}, got {raw!r}",
                code="invalid_parameter",
            )
        if self.kind is int:
            if value != int(value):
                raise ValidationError(f"{where} must be a whole number, got {raw!r}", code="invalid_parameter")
            value = int(value)
        if not self.minimum <= value <= self.maximum:
            raise ValidationError(
                f"{where} must be between {self.minimum} and {self.maximum}, got {raw!r}", code="out_of_range"
            )
        return value


def _to_number(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            return None
    else:
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Indicator:
    name: str
    label: str
    params: tuple[Param, ...]
    columns: tuple[str, ...]
    panel: str  # PRICE_PANEL, or the name of a panel of its own
    warmup: Callable[[dict], int]
    checks: tuple[Callable[[dict], str | None], ...] = field(default=())

    @property
    def param_names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def defaults(self) -> dict[str, int | float]:
        return {p.name: p.default for p in self.params}

    def describe(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "params": {p.name: p.describe() for p in self.params},
            "columns": list(self.columns),
            "panel": self.panel,
        }


def _period(default: int, *, minimum: int = 2) -> Param:
    return Param("period", int, default, minimum, 500, "bars in the window")


def _macd_order(params: dict) -> str | None:
    if params["fast"] >= params["slow"]:
        return f"MACD fast ({params['fast']}) must be shorter than slow ({params['slow']})"
    return None


REGISTRY: dict[str, Indicator] = {
    spec.name: spec
    for spec in (
        Indicator(
            "RSI",
            "Relative Strength Index",
            (_period(14),),
            ("rsi",),
            "rsi",
            warmup=lambda p: p["period"],
        ),
        Indicator(
            "MACD",
            "Moving Average Convergence Divergence",
            (
                Param("fast", int, 12, 2, 200, "fast EMA span"),
                Param("slow", int, 26, 3, 500, "slow EMA span"),
                Param("signal", int, 9, 2, 200, "signal EMA span"),
            ),
            ("macd", "signal", "histogram"),
            "macd",
            warmup=lambda p: p["slow"] + p["signal"] - 1,
            checks=(_macd_order,),
        ),
        Indicator(
            "ATR",
            "Average True Range (Wilder)",
            (_period(14, minimum=1),),
            ("atr",),
            "atr",
            warmup=lambda p: p["period"],
        ),
        Indicator("SMA", "Simple Moving Average", (_period(20),), ("sma",), PRICE_PANEL, warmup=lambda p: p["period"]),
        Indicator(
            "EMA", "Exponential Moving Average", (_period(20),), ("ema",), PRICE_PANEL, warmup=lambda p: p["period"]
        ),
        Indicator(
            "BB",
            "Bollinger Bands",
            (_period(20), Param("std", float, 2.0, 0.1, 10.0, "band width in population standard deviations")),
            ("upper", "middle", "lower"),
            PRICE_PANEL,
            warmup=lambda p: p["period"],
        ),
        Indicator(
            "SUPERTREND",
            "Supertrend",
            (_period(10, minimum=1), Param("multiplier", float, 3.0, 0.1, 20.0, "ATR multiples from (high+low)/2")),
            ("supertrend", "direction"),
            PRICE_PANEL,
            warmup=lambda p: p["period"],
        ),
    )
}


def indicator_spec(indicator_type: str | None) -> Indicator:
    """The registry entry; the name is matched case-insensitively. Unknown: a ValidationError listing the choices."""
    key = str(indicator_type or "").strip().upper()
    if key not in REGISTRY:
        raise ValidationError(
            f"Unknown indicator {indicator_type!r}: choose one of {', '.join(REGISTRY)}", code="unknown_indicator"
        )
    return REGISTRY[key]


def describe_registry() -> dict[str, dict]:
    """The registry as plain data, for the API, forms and help texts."""
    return {name: spec.describe() for name, spec in REGISTRY.items()}


def validate_config(indicator_type: str | None, params: Mapping[str, Any] | None) -> dict[str, int | float]:
    """The parameters with defaults filled in and values coerced to their types ("14" -> 14).

    Raises ValidationError with one message per problem: an unknown indicator, an unknown parameter, a value of the
    wrong type or out of range, or parameters that contradict each other (MACD fast >= slow)."""
    spec = indicator_spec(indicator_type)
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ValidationError(
            f"{spec.name} parameters must be an object of name: value, got {type(params).__name__}",
            code="invalid_parameters",
        )
    errors: list[ValidationError] = []
    for name in params:
        if name not in spec.param_names:
            takes = ", ".join(spec.param_names)
            errors.append(
                ValidationError(f"{spec.name} has no parameter {name!r} (it takes: {takes})", code="unknown_parameter")
            )
    cleaned: dict[str, int | float] = {}
    for param in spec.params:
        raw = params.get(param.name)
        if raw is None or raw == "":
            cleaned[param.name] = param.default
            continue
        try:
            cleaned[param.name] = param.clean(spec.name, raw)
        except ValidationError as exc:
            errors.append(exc)
    if not errors:
        errors = [ValidationError(message, code="inconsistent") for check in spec.checks if (message := check(cleaned))]
    if errors:
        raise ValidationError(errors)
    return cleaned


def validate_config_fields(indicator_type: str, params: Mapping[str, Any] | None) -> dict[str, int | float]:
    """validate_config for a model form or serializer: the errors keyed by the field the user typed them in
    (`indicator_type` or `parameters`, as on trading.IndicatorConfig)."""
    try:
        indicator_spec(indicator_type)
    except ValidationError as exc:
        raise ValidationError({"indicator_type": exc.messages}) from exc
    try:
        return validate_config(indicator_type, params)
    except ValidationError as exc:
        raise ValidationError({"parameters": exc.messages}) from exc


def warmup_bars(indicator_type: str, params: Mapping[str, Any] | None = None) -> int:
    """How many bars the indicator needs before its first value: row warmup_bars - 1 is the first non-empty one."""
    spec = indicator_spec(indicator_type)
    return spec.warmup(validate_config(spec.name, params))


def compute(df: pd.DataFrame, indicator_type: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The indicator over `df` (columns high, low, close; ascending index), one column per output, same index.
    Rows before the warm-up are NaN."""
    spec = indicator_spec(indicator_type)
    cleaned = validate_config(spec.name, params)
    missing = {"high", "low", "close"} - set(df.columns)
    if missing:
        raise ValueError(f"bars are missing the column(s) {', '.join(sorted(missing))}")
    close = df["close"].astype(float)
    columns = _COMPUTE[spec.name](df, close, cleaned)
    # One float block: much cheaper for pandas than a dict of arrays.
    values = np.column_stack([np.asarray(columns[name], dtype=float) for name in spec.columns])
    return pd.DataFrame(values, index=df.index, columns=list(spec.columns))


def wilder_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's ATR: the first value (row period-1) is the simple mean of the first `period` true ranges, then
    atr[t] = (atr[t-1] * (period-1) + tr[t]) / period, i.e. an exponential mean with alpha 1/period."""
    n = len(close)
    out = np.full(n, np.nan)
    if n < period:
        return out
    prev_close = np.empty(n)
    prev_close[0] = np.nan
    prev_close[1:] = close[:-1]
    # fmax ignores NaN, so the first bar's true range is its high - low.
    true_range = np.fmax(high - low, np.fmax(np.abs(high - prev_close), np.abs(low - prev_close)))
    seeded = true_range[period - 1 :].copy()
    seeded[0] = true_range[:period].mean()
    out[period - 1 :] = pd.Series(seeded).ewm(alpha=1.0 / period, adjust=False).mean().to_numpy()
    return out


def supertrend(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int, multiplier: float
) -> tuple[np.ndarray, np.ndarray]:
    """Supertrend line and direction (+1 up, -1 down).

    Bands sit `multiplier` ATRs above and below (high+low)/2. While the trend holds they only tighten: the upper
    band moves down (or resets when the previous close broke above it), the lower band moves up (or resets when the
    previous close broke below it). An uptrend turns down when the close falls below the lower band; a downtrend
    turns up when the close rises above the upper band. The line is the lower band in an uptrend, the upper band in
    a downtrend. The first bar with an ATR starts up if its close is above (high+low)/2, else down.
    """
    n = len(close)
    line = np.full(n, np.nan)
    direction = np.full(n, np.nan)
    atr = wilder_atr(high, low, close, period)
    start = period - 1
    if n <= start:
        return line, direction
    mid = (high + low) / 2.0
    basic_upper = (mid + multiplier * atr)[start:].tolist()
    basic_lower = (mid - multiplier * atr)[start:].tolist()
    closes = close[start:].tolist()
    # A plain loop over Python floats: each band depends on the previous one, and this is far faster than numpy
    # element access for a few thousand bars.
    upper, lower = basic_upper[0], basic_lower[0]
    trend = 1 if closes[0] > mid[start] else -1
    lines = [lower if trend == 1 else upper]
    trends = [trend]
    for bu, bl, prev_close, c in zip(basic_upper[1:], basic_lower[1:], closes, closes[1:], strict=False):
        if bu < upper or prev_close > upper:
            upper = bu
        if bl > lower or prev_close < lower:
            lower = bl
        if trend == 1:
            if c < lower:
                trend = -1
        elif c > upper:
            trend = 1
        lines.append(lower if trend == 1 else upper)
        trends.append(trend)
    line[start:] = lines
    direction[start:] = trends
    return line, direction


def _arrays(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        df["high"].to_numpy(dtype=float),
        df["low"].to_numpy(dtype=float),
        df["close"].to_numpy(dtype=float),
    )


def _rsi(df: pd.DataFrame, close: pd.Series, p: dict) -> dict:
    return {"rsi": RSIIndicator(close, window=p["period"]).rsi().to_numpy()}


def _macd(df: pd.DataFrame, close: pd.Series, p: dict) -> dict:
    macd = MACD(close, window_slow=p["slow"], window_fast=p["fast"], window_sign=p["signal"])
    return {
        "macd": macd.macd().to_numpy(),
        "signal": macd.macd_signal().to_numpy(),
        "histogram": macd.macd_diff().to_numpy(),
    }


def _atr(df: pd.DataFrame, close: pd.Series, p: dict) -> dict:
    return {"atr": wilder_atr(*_arrays(df), p["period"])}


def _sma(df: pd.DataFrame, close: pd.Series, p: dict) -> dict:
    return {"sma": SMAIndicator(close, window=p["period"]).sma_indicator().to_numpy()}


def _ema(df: pd.DataFrame, close: pd.Series, p: dict) -> dict:
    return {"ema": EMAIndicator(close, window=p["period"]).ema_indicator().to_numpy()}


def _bb(df: pd.DataFrame, close: pd.Series, p: dict) -> dict:
    bands = BollingerBands(close, window=p["period"], window_dev=p["std"])
    return {
        "upper": bands.bollinger_hband().to_numpy(),
        "middle": bands.bollinger_mavg().to_numpy(),
        "lower": bands.bollinger_lband().to_numpy(),
    }


def _supertrend(df: pd.DataFrame, close: pd.Series, p: dict) -> dict:
    line, direction = supertrend(*_arrays(df), p["period"], p["multiplier"])
    return {"supertrend": line, "direction": direction}


_COMPUTE: dict[str, Callable[[pd.DataFrame, pd.Series, dict], dict]] = {
    "RSI": _rsi,
    "MACD": _macd,
    "ATR": _atr,
    "SMA": _sma,
    "EMA": _ema,
    "BB": _bb,
    "SUPERTREND": _supertrend,
}

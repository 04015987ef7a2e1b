"""The analysis steps of a strategy run, as functions the strategy executor and the `analyse` command call:

    context = build_context(strategy=..., bars_df=..., indicators=..., charts=..., clock=...)
    analysis = analyse(strategy=..., context=context, charts=charts, execution=...)
    parsed = parse_signal(analysis=analysis, last_close=..., strategy=...)

No step holds a database transaction across the LLM call: the LLMCall row is written after the answer is in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import replace
from decimal import Decimal

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.files.storage import default_storage

from market.clock import MarketClock, clock_for_strategy, trading_day
from market.indicators import compute, warmup_bars
from market.sources import source_for_strategy
from portfolio.models import Position
from signals_app import services
from signals_app.llm import (
    Analysis,
    AnalysisRequest,
    Answer,
    BaseAnalyst,
    ChartImage,
    Exchange,
    LLMCacheMiss,
    LLMError,
    cost_usd,
    get_analyst,
)
from signals_app.models import Analyst, LLMCall, PromptType
from signals_app.parsing import SIGNAL_SCHEMA, SIGNAL_SCHEMA_VERSION, ParsedSignal, hold, parse_answer
from signals_app.prompts import render_prompt, resolve_prompt_version

PROMPT_BARS = 30  # bars shown as numbers; the chart shows the whole lookback
RECENT_INDICATOR_VALUES = 5
CACHE_MODES = ("use", "only", "off")
COLUMN_TYPES = {  # indicator output columns -> the indicator type, for frames given without their config
    "supertrend": "SUPERTREND",
    "rsi": "RSI",
    "macd": "MACD",
    "atr": "ATR",
    "sma": "SMA",
    "ema": "EMA",
    "upper": "BB",
}


# --- market inputs for the prompt previews (the page and the admin): the run's own are the executor's steps --------


def fetch_bars(*, strategy, clock: MarketClock) -> pd.DataFrame:
    """The strategy's bars up to the clock's now: the lookback plus the longest indicator warm-up."""
    configs = _indicator_configs(strategy)
    warmup = max((warmup_bars(c.indicator_type, c.parameters) for c in configs), default=0)
    source = source_for_strategy(strategy)
    return source.bars(strategy.symbol, strategy.bar_size, end=clock.now(), limit=strategy.lookback_bars + warmup)


def calculate_indicators(*, strategy, bars_df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """name -> the frame market.indicators.compute returns, for each of the strategy's indicators, in order."""
    return {c.name: compute(bars_df, c.indicator_type, c.parameters) for c in _indicator_configs(strategy)}


def preview_context(strategy, *, clock: MarketClock | None = None) -> dict:
    """The context a run would build now from the strategy's latest data, without drawing charts (prompt previews)."""
    clock = clock or clock_for_strategy(strategy)
    bars = fetch_bars(strategy=strategy, clock=clock)
    indicators = calculate_indicators(strategy=strategy, bars_df=bars)
    return build_context(strategy=strategy, bars_df=bars, indicators=indicators, charts=[], clock=clock)


def _indicator_configs(strategy) -> list:
    return [link.indicator for link in strategy.strategy_indicators.select_related("indicator").order_by("position")]


# --- build_context ------------------------------------------------------------------------------------------------


LOOK_IT_UP = object()  # build_context's default position: read the strategy's open position from the database


def build_context(
    *,
    strategy,
    bars_df: pd.DataFrame,
    indicators: dict,
    charts: list[dict],
    clock: MarketClock,
    position=LOOK_IT_UP,
) -> dict:
    """The documented prompt context (see signals_app.prompts.CONTEXT_VARIABLES): plain dicts, lists, strings and
    numbers, never model instances.

    `indicators` maps a name to the frame `market.indicators.compute` returned (same index as the bars); the
    strategy's indicator configs with that name give the type and parameters. `position` is the strategy's open
    position (or None) when the caller holds it already (a replay's books), else it is read here."""
    if bars_df is None or bars_df.empty:
        raise ValueError(f"no bars for {strategy.symbol.symbol} {strategy.bar_size}: nothing to analyse")
    now = clock.now()
    symbol = strategy.symbol
    bars = _bars_context(bars_df.iloc[-PROMPT_BARS:])
    last_close = bars[-1]["close"]
    configs = {link.indicator.name: link.indicator for link in _indicator_links(strategy)}
    indicator_items = [_indicator_context(name, frame, configs.get(name)) for name, frame in indicators.items()]
    band = float(settings.SIGNAL_PRICE_BAND)
    return {
        "symbol": {
            "symbol": symbol.symbol,
            "name": symbol.name,
            "exchange": symbol.exchange,
            "currency": symbol.currency,
            "asset_type": symbol.asset_type,
        },
        "bar_size": strategy.bar_size,
        "now": _iso(now),
        "trading_day": trading_day(now, symbol.time_zone).isoformat(),
        "last_close": last_close,
        "last_bar_time": bars[-1]["time"],
        "bars": bars,
        "bars_table": _bars_table(bars),
        "bars_shown": len(bars),
        "indicators": indicator_items,
        "indicators_table": _indicators_table(indicator_items),
        "position": _position_context(open_position(strategy) if position is LOOK_IT_UP else position, last_close),
        "risk": {
            "risk_per_trade": float(strategy.risk_per_trade),
            "max_position_value": float(strategy.max_position_value),
            "max_open_positions": strategy.max_open_positions,
            "daily_loss_limit": float(strategy.daily_loss_limit),
            "min_confidence": float(strategy.min_confidence),
            "reward_risk_ratio": float(strategy.reward_risk_ratio),
            "price_band": band,
            "price_band_percent": round(band * 100, 2),
        },
        "charts": [
            {
                "title": chart.get("title") or chart.get("key", ""),
                "width": chart.get("width"),
                "height": chart.get("height"),
            }
            for chart in charts
        ],
        "strategy": {"name": strategy.name, "bar_size": strategy.bar_size, "lookback_bars": strategy.lookback_bars},
    }


BAR_COLUMNS = ("open", "high", "low", "close")


def _bars_context(shown: pd.DataFrame) -> list[dict]:
    """The shown bars as dicts, built column by column (no per-row Series)."""
    columns = [[_num(value) for value in shown[name].tolist()] for name in BAR_COLUMNS]
    volume = [_num(value) for value in shown["volume"].tolist()] if "volume" in shown.columns else [0.0] * len(shown)
    return [
        {"time": _iso(index), "open": o, "high": h, "low": low, "close": c, "volume": v}
        for index, o, h, low, c, v in zip(shown.index, *columns, volume, strict=True)
    ]


def _indicator_links(strategy):
    """The strategy's indicator links with their configs: the prefetched ones when the caller loaded them."""
    if "strategy_indicators" in getattr(strategy, "_prefetched_objects_cache", {}):
        return strategy.strategy_indicators.all()
    return strategy.strategy_indicators.select_related("indicator")


def _indicator_context(name: str, frame, config) -> dict:
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    elif not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame)
    kind = config.indicator_type if config else next((t for c, t in COLUMN_TYPES.items() if c in frame.columns), "")
    rows = _last_rows_with_values(frame, RECENT_INDICATOR_VALUES)
    latest = dict(rows[-1][1]) if rows else {}
    recent = [{"time": _iso(index), **values} for index, values in rows]
    return {
        "name": name,
        "type": kind,
        "params": dict(config.parameters) if config else {},
        "latest": latest,
        "recent": recent,
    }


def _last_rows_with_values(frame: pd.DataFrame, count: int) -> list[tuple]:
    """The last `count` rows with any value (the rows `dropna(how="all")` keeps), oldest first, as
    (index, {column: value}) pairs; found with one mask over the frame instead of a copy of it."""
    if not len(frame.columns):
        return []
    columns = list(frame.columns)
    array = frame.to_numpy()
    if array.dtype == np.float64:  # the usual indicator frame: float columns only, one array
        kept = np.flatnonzero(~np.isnan(array).all(axis=1))[-count:]
        return [
            (index, {column: _num(value) for column, value in zip(columns, row, strict=True)})
            for index, row in zip(frame.index[kept], array[kept].tolist(), strict=True)
        ]
    kept = np.flatnonzero(frame.notna().to_numpy().any(axis=1))[-count:]
    if not len(kept):
        return []
    rows = frame.iloc[kept]
    values = [[_num(value) for value in rows.iloc[:, position].tolist()] for position in range(len(columns))]
    return [
        (index, dict(zip(columns, row, strict=True)))
        for index, row in zip(rows.index, zip(*values, strict=True), strict=True)
    ]


def open_position(strategy) -> Position | None:
    """The strategy's open position in its symbol (long-only: at most one)."""
    return Position.with_replays.open().filter(strategy=strategy, symbol=strategy.symbol).order_by("-opened_at").first()


def _position_context(position: Position | None, last_close: float) -> dict | None:
    if position is None:
        return None
    quantity = float(position.quantity)
    return {
        "quantity": quantity,
        "average_cost": float(position.average_cost),
        "stop_loss": _num(position.stop_loss),
        "take_profit": _num(position.take_profit),
        "opened_at": _iso(position.opened_at),
        "unrealized_pnl": round((last_close - float(position.average_cost)) * quantity, 2),
    }


def _bars_table(bars: list[dict]) -> str:
    lines = [f"{'time':<25} {'open':>12} {'high':>12} {'low':>12} {'close':>12} {'volume':>14}"]
    lines += [
        f"{bar['time']:<25} {bar['open']:>12g} {bar['high']:>12g} {bar['low']:>12g} {bar['close']:>12g} "
        f"{bar['volume']:>14g}"
        for bar in bars
    ]
    return "\n".join(lines)


def _indicators_table(items: list[dict]) -> str:
    if not items:
        return "(no indicators configured)"
    lines = []
    for item in items:
        params = ", ".join(f"{k}={v}" for k, v in item["params"].items())
        latest = ", ".join(f"{k}={_fmt(v)}" for k, v in item["latest"].items())
        recent = "; ".join(
            " ".join(f"{k}={_fmt(v)}" for k, v in row.items() if k != "time") for row in item["recent"][:-1]
        )
        lines.append(f"{item['name']} ({item['type']}{' ' + params if params else ''}): {latest or 'no value yet'}")
        if recent:
            lines.append(f"    previous, oldest first: {recent}")
    return "\n".join(lines)


def _num(value) -> float | None:
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number):
        return None
    return round(number, 6)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:g}"


def _iso(value) -> str:
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return str(value)


# --- analyse --------------------------------------------------------------------------------------------------------


def analyse(
    *,
    strategy,
    context: dict,
    charts: list[dict],
    analyst: BaseAnalyst | str | None = None,
    model: str | None = None,
    llm_cache: str = "use",
    execution=None,
) -> Analysis:
    """Ask the strategy's analyst (or the one given) for a decision. LLM analysts: resolve and render the prompts,
    attach the charts, answer from the LLM cache when allowed, and record an LLMCall either way. Raises LLMError
    (recorded first) when no answer could be had; LLMCacheMiss when llm_cache='only' finds nothing."""
    if llm_cache not in CACHE_MODES:
        raise ValueError(f"llm_cache {llm_cache!r}: use one of {', '.join(CACHE_MODES)}")
    analyst = get_analyst(analyst or strategy.analyst) if not isinstance(analyst, BaseAnalyst) else analyst
    if analyst.kind == Analyst.RULES:
        answer = analyst.analyse(AnalysisRequest(model="rules", system="", prompt="", context=context))
        return Analysis(analyst=Analyst.RULES, model="rules", answer=answer, cost_usd=Decimal(0))

    model = model or strategy.llm_model or analyst.default_model()
    version = resolve_prompt_version(strategy, PromptType.ANALYSIS)
    system_version = resolve_prompt_version(strategy, PromptType.SYSTEM)
    request = AnalysisRequest(
        model=model,
        system=render_prompt(system_version, context),
        prompt=render_prompt(version, context),
        images=[load_chart(chart) for chart in charts],
        schema=SIGNAL_SCHEMA,
        max_tokens=settings.LLM_MAX_TOKENS,
        effort=settings.LLM_EFFORT,
        context=context,
    )
    key = cache_key(analyst=analyst.kind, request=request, prompt_version=version, system_version=system_version)
    common = {
        "strategy": strategy,
        "execution": execution,
        "prompt_version": version,
        "system_prompt_version": system_version,
        "analyst": analyst.kind,
        "requested_model": model,
        "cache_key": key,
    }
    analysis = Analysis(
        analyst=analyst.kind,
        model=model,
        answer=Answer(),
        prompt_version=version,
        system_prompt_version=system_version,
        rendered_prompt=request.prompt,
    )

    if llm_cache != "off":
        stored = LLMCall.objects.reusable_for(key).first()
        if stored is not None:
            call = services.llm_call_record_cache_hit(origin=stored, **common)
            analysis.answer = _answer_from_call(stored)
            analysis.llm_call, analysis.from_cache, analysis.cost_usd = call, True, Decimal(0)
            return analysis
        if llm_cache == "only":
            raise LLMCacheMiss(
                f"--llm-cache only: no stored answer for this request (model {model}, prompt {version}, key {key[:12]})"
            )

    try:
        answer = analyst.analyse(request)
    except LLMError as exc:
        exchange = exc.exchange or Exchange()
        services.llm_call_record(exchange=exchange, error=str(exc), cost=None, answer=None, **common)
        raise
    cost = cost_usd(answer.exchange.resolved_model or model, answer.exchange.usage)
    analysis.answer = answer
    analysis.cost_usd = cost
    analysis.llm_call = services.llm_call_record(exchange=answer.exchange, error="", cost=cost, answer=answer, **common)
    return analysis


def load_chart(chart: dict) -> ChartImage:
    """The chart's PNG, from the dict itself or from storage by key; its sha256 must match what was stored."""
    data = chart.get("data") or chart.get("png")
    if data is None and isinstance(chart.get("bytes"), bytes | bytearray):
        data = chart["bytes"]
    if data is None:
        with default_storage.open(chart["key"], "rb") as handle:
            data = handle.read()
    digest = hashlib.sha256(data).hexdigest()
    if chart.get("sha256") and chart["sha256"] != digest:
        raise LLMError(f"chart {chart['key']} does not match its sha256: refusing to send a different image")
    return ChartImage(
        key=chart.get("key", ""),
        sha256=digest,
        data=bytes(data),
        width=int(chart.get("width") or 0),
        height=int(chart.get("height") or 0),
        media_type=chart.get("media_type", "image/png"),
        title=chart.get("title", ""),
    )


def cache_key(*, analyst: str, request: AnalysisRequest, prompt_version, system_version) -> str:
    """Identical request = same analyst and model, prompt versions, rendered texts, image hashes and schema."""
    material = {
        "analyst": analyst,
        "model": request.model,
        "prompt_version": prompt_version.pk,
        "prompt_sha256": prompt_version.sha256,
        "system_version": system_version.pk,
        "system": hashlib.sha256(request.system.encode()).hexdigest(),
        "prompt": hashlib.sha256(request.prompt.encode()).hexdigest(),
        "images": [image.sha256 for image in request.images],
        "schema": SIGNAL_SCHEMA_VERSION,
        "max_tokens": request.max_tokens,
        "effort": request.effort,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _answer_from_call(call: LLMCall) -> Answer:
    exchange = Exchange(
        request=call.request,
        response=call.response,
        resolved_model=call.resolved_model,
        stop_reason=call.stop_reason,
        request_id=call.request_id,
        usage={},  # nothing was sent: no tokens were used
    )
    return Answer(text=call.answer_text, fields=call.answer_fields, stop_reason=call.stop_reason, exchange=exchange)


# --- parse_signal ---------------------------------------------------------------------------------------------------


def parse_signal(*, analysis: Analysis, last_close, strategy) -> ParsedSignal:
    """Validate the answer; anything unusable becomes HOLD with the reason. A SELL with no open long is HOLD too:
    the product never shorts."""
    answer = analysis.answer
    if answer.stop_reason != "end_turn":
        return hold(f"the model stopped with '{answer.stop_reason}' before a complete answer; nothing to act on")
    band = float(settings.SIGNAL_PRICE_BAND)
    raw = answer.fields if answer.fields is not None else answer.text
    parsed = parse_answer(raw, last_close=Decimal(str(last_close)), band=band)
    if analysis.analyst == Analyst.RULES and parsed.source == "json":
        parsed = _with_source(parsed, "rules")
    if parsed.action == "SELL" and not Position.with_replays.open().filter(strategy=strategy).exists():
        return hold(
            "SELL with no open position: the product does not short", reasoning=parsed.reasoning, source=parsed.source
        )
    return parsed


def _with_source(parsed: ParsedSignal, source: str) -> ParsedSignal:
    return replace(parsed, source=source)

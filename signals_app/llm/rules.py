"""The rules analyst: deterministic, offline, and explainable line by line.

Each configured indicator casts one vote of +1 (bullish), -1 (bearish) or 0 (neutral):
- trend: Supertrend direction; close above/below each EMA or SMA;
- momentum: RSI above 55 / below 45 (neutral between); MACD histogram above/below zero.
The score is the mean vote (-1..1). Flat: BUY when trend and momentum both lean up and the score is at least
BUY_SCORE. Long: SELL when the score turns negative. Otherwise HOLD. Entry is the last close, the stop
ATR_STOP_MULTIPLE ATRs below it (the ATR indicator if configured, else a 14-bar ATR from the bars), the target the
strategy's reward:risk ratio times that distance above it; confidence is 0.5 + |score| / 2.
It is the demo's analyst and the baseline every prompt is compared with.
"""

from __future__ import annotations

from decimal import Decimal

from signals_app.llm.base import AnalysisRequest, Answer, BaseAnalyst, Exchange

BUY_SCORE = Decimal("0.5")
ATR_STOP_MULTIPLE = Decimal(2)
RSI_BULL, RSI_BEAR = 55.0, 45.0
ATR_FALLBACK_PERIOD = 14
TREND_TYPES = {"SUPERTREND", "EMA", "SMA"}
MOMENTUM_TYPES = {"RSI", "MACD"}


class RulesAnalyst(BaseAnalyst):
    kind = "rules"

    def default_model(self) -> str:
        return "rules"

    def analyse(self, request: AnalysisRequest) -> Answer:
        return Answer(fields=decide(request.context), stop_reason="end_turn", exchange=Exchange())


def decide(context: dict) -> dict:
    """The decision as the fields of an answer, in JSON types (floats), exactly as an LLM's would be: it is stored
    in lineage and read back the same way when a run resumes."""
    fields = _decide(context)
    for name in ("entry", "stop_loss", "target", "confidence"):
        if fields[name] is not None:
            fields[name] = float(fields[name])
    return fields


def _decide(context: dict) -> dict:
    last_close = Decimal(str(context["last_close"]))
    votes = [vote for indicator in context.get("indicators", []) if (vote := _vote(indicator, float(last_close)))]
    trend = [v for v in votes if v[0] in TREND_TYPES]
    momentum = [v for v in votes if v[0] in MOMENTUM_TYPES]
    lines = [f"{label}: {why} ({value:+d})" for _, label, value, why in votes]
    if not trend or not momentum:
        return _hold(
            "no vote: the rules need at least one trend (Supertrend, EMA, SMA) and one momentum (RSI, MACD) indicator",
            lines,
        )

    score = Decimal(sum(v[2] for v in votes)) / len(votes)
    trend_score = sum(v[2] for v in trend)
    momentum_score = sum(v[2] for v in momentum)
    confidence = (Decimal("0.5") + abs(score) / 2).quantize(Decimal("0.0001"))
    lines.append(f"score {score:+.2f} from {len(votes)} votes")
    position = context.get("position")

    if position:
        if score < 0:
            lines.append("the vote has turned against the open long: close it at the last close")
            return {
                "action": "SELL",
                "entry": last_close,
                "stop_loss": None,
                "target": None,
                "confidence": confidence,
                "reasoning": "; ".join(lines),
            }
        return _hold("a long is open and the vote has not turned against it", lines, confidence)

    if trend_score > 0 and momentum_score > 0 and score >= BUY_SCORE:
        atr, atr_source = _atr(context)
        if atr is None or atr <= 0:
            return _hold("no ATR to place a stop (configure ATR or give more bars)", lines)
        reward_risk = Decimal(str(context.get("risk", {}).get("reward_risk_ratio", 2)))
        quantum = _price_quantum(last_close)
        risk = ATR_STOP_MULTIPLE * atr
        stop = (last_close - risk).quantize(quantum)
        target = (last_close + reward_risk * risk).quantize(quantum)
        lines.append(
            f"entry {last_close} (last close); stop {stop} = close - {ATR_STOP_MULTIPLE} x ATR {atr:.4f} "
            f"({atr_source}); target {target} = close + {reward_risk} x risk"
        )
        return {
            "action": "BUY",
            "entry": last_close,
            "stop_loss": stop,
            "target": target,
            "confidence": confidence,
            "reasoning": "; ".join(lines),
        }
    return _hold("trend and momentum do not agree strongly enough to buy", lines, confidence)


def _vote(indicator: dict, close: float) -> tuple[str, str, int, str] | None:
    kind = str(indicator.get("type", "")).upper()
    latest = indicator.get("latest") or {}
    label = indicator.get("name") or kind
    if kind == "SUPERTREND" and _finite(latest.get("direction")):
        up = float(latest["direction"]) > 0
        return kind, label, 1 if up else -1, f"direction {'up' if up else 'down'}"
    if kind in {"EMA", "SMA"} and _finite(latest.get(kind.lower())):
        level = float(latest[kind.lower()])
        if close == level:
            return kind, label, 0, f"close {close:g} on the average {level:g}"
        above = close > level
        return kind, label, 1 if above else -1, f"close {close:g} {'above' if above else 'below'} {level:g}"
    if kind == "RSI" and _finite(latest.get("rsi")):
        rsi = float(latest["rsi"])
        value = 1 if rsi > RSI_BULL else -1 if rsi < RSI_BEAR else 0
        return kind, label, value, f"RSI {rsi:.1f}"
    if kind == "MACD" and _finite(latest.get("histogram")):
        histogram = float(latest["histogram"])
        value = 1 if histogram > 0 else -1 if histogram < 0 else 0
        return kind, label, value, f"histogram {histogram:.4f}"
    return None


def _atr(context: dict) -> tuple[Decimal | None, str]:
    for indicator in context.get("indicators", []):
        latest = indicator.get("latest") or {}
        if str(indicator.get("type", "")).upper() == "ATR" and _finite(latest.get("atr")):
            return Decimal(str(latest["atr"])), indicator.get("name") or "ATR"
    bars = context.get("bars") or []
    if len(bars) < ATR_FALLBACK_PERIOD + 1:
        return None, ""
    ranges = []
    for previous, bar in zip(bars[-ATR_FALLBACK_PERIOD - 1 : -1], bars[-ATR_FALLBACK_PERIOD:], strict=True):
        high, low, prior_close = float(bar["high"]), float(bar["low"]), float(previous["close"])
        ranges.append(max(high - low, abs(high - prior_close), abs(low - prior_close)))
    return Decimal(str(round(sum(ranges) / len(ranges), 6))), f"{ATR_FALLBACK_PERIOD}-bar ATR from the bars"


def _hold(reason: str, lines: list[str], confidence: Decimal = Decimal(0)) -> dict:
    return {
        "action": "HOLD",
        "entry": None,
        "stop_loss": None,
        "target": None,
        "confidence": confidence,
        "reasoning": "; ".join([*lines, reason]),
    }


def _price_quantum(price: Decimal) -> Decimal:
    return Decimal("0.01") if price >= 1 else Decimal("0.000001")


def _finite(value) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return number == number and number not in (float("inf"), float("-inf"))

"""What an anonymised replay's analyst sees: the same context with no ticker, no names and relative dates.

Bars and indicator values are labelled by their distance from the newest bar ("t-0" is the newest, "t-1" the one
before), `now` is "t", and the trading day is gone. Every string in the context (the pre-rendered tables too) has
the ticker, the instrument's name and every timestamp replaced, so no template variable can leak them.
"""

from __future__ import annotations

import re
from typing import Any

ASSET = "ASSET"


def anonymise_context(context: dict) -> dict:
    bars = context.get("bars") or []
    labels = {bar["time"]: f"t-{len(bars) - 1 - i}" for i, bar in enumerate(bars)}
    labels.setdefault(context.get("now", ""), "t")
    words = {w for w in (context.get("symbol", {}).get("symbol"), context.get("symbol", {}).get("name")) if w}
    strategy_name = (context.get("strategy") or {}).get("name")
    if strategy_name:
        words.add(strategy_name)

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, list):
            return [clean(item) for item in value]
        if isinstance(value, str):
            return _scrub(value, labels, words)
        return value

    out = clean(context)
    currency = (context.get("symbol") or {}).get("currency", "")
    out["symbol"] = {"symbol": ASSET, "name": "", "exchange": "", "currency": currency, "asset_type": ""}
    out["now"] = "t"
    out["trading_day"] = "t"
    out["last_bar_time"] = "t-0"
    out["strategy"] = {**out.get("strategy", {}), "name": "strategy"}
    if out.get("position") and out["position"].get("opened_at"):
        out["position"]["opened_at"] = labels.get(context["position"]["opened_at"], "earlier")
    out["anonymised"] = True
    return out


ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?")


def _scrub(text: str, labels: dict[str, str], words: set[str]) -> str:
    table = "\n" in text  # keep a table's columns aligned
    for iso, label in sorted(labels.items(), key=lambda item: -len(item[0])):
        if iso:
            text = text.replace(iso, label.ljust(len(iso)) if table else label)
    text = ISO_TIME.sub("t-?", text)  # any date not among the bars (a position's entry, a chart title)
    for word in sorted(words, key=len, reverse=True):
        text = re.sub(rf"\b{re.escape(word)}\b", ASSET, text, flags=re.IGNORECASE)
    return text

"""The steps of a strategy run, in order: the one list the executor, `analyse`, the lineage pages and the charts
page share. A step's name is what its lineage record is stored under."""

from __future__ import annotations

STEPS: tuple[str, ...] = (
    "load_strategy",
    "fetch_market_data",
    "calculate_indicators",
    "generate_charts",
    "llm_analysis",
    "parse_signal",
    "risk_check",
    "place_order",
    "execution_complete",
)
STEP_NUMBERS = {name: number for number, name in enumerate(STEPS, start=1)}
# `analyse` runs the steps up to the parsed signal: nothing is checked or placed.
ANALYSIS_STEPS = STEPS[: STEP_NUMBERS["parse_signal"]]
CHART_STEP = "generate_charts"


def chart_entries(output_data: dict) -> list[dict]:
    """The charts a generate_charts step stored, as dicts with at least `key` (the storage key)."""
    raw = output_data.get("charts") or output_data.get("chart_keys") or []
    entries: list[dict] = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, str):
            entries.append({"key": item})
        elif isinstance(item, dict) and (item.get("key") or item.get("storage_key")):
            entries.append({**item, "key": item.get("key") or item.get("storage_key")})
    return entries

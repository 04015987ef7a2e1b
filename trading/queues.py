"""Which Celery queue each step of a run works on, with PIPELINE_SPLIT_QUEUES (else every step on the default)."""

from __future__ import annotations

from django.conf import settings

from lineage.steps import STEPS

# With PIPELINE_SPLIT_QUEUES, the queue each step runs on. The steps up to the chart run in one chart process, so the
# bars and indicators it draws are the ones it just computed, not read again.
STEP_QUEUES = {
    "load_strategy": "charts",
    "fetch_market_data": "charts",
    "calculate_indicators": "charts",
    "generate_charts": "charts",
    "llm_analysis": "analysis",
    "parse_signal": "analysis",
    "risk_check": "analysis",
    "place_order": "orders",
    "execution_complete": "orders",
}


def first_queue() -> str | None:
    """Where a run starts: the first step's queue when the pipeline is split, else the default queue."""
    return STEP_QUEUES[STEPS[0]] if settings.PIPELINE_SPLIT_QUEUES else None

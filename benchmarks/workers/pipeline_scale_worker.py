"""The Celery app the pipeline scale benchmark starts its workers with: the project's own app, with the rules
analyst made to wait BENCH_ANALYST_DELAY seconds per analysis, standing in for an LLM's latency."""

from __future__ import annotations

import os
import time

from celery.signals import worker_init

from config.celery import app

__all__ = ["app"]


@worker_init.connect
def slow_down_the_rules_analyst(**kwargs) -> None:
    import django

    django.setup()
    from signals_app.llm.rules import RulesAnalyst

    delay = float(os.environ.get("BENCH_ANALYST_DELAY", "2"))
    analyse = RulesAnalyst.analyse

    def delayed(self, request):
        time.sleep(delay)
        return analyse(self, request)

    RulesAnalyst.analyse = delayed

"""The Celery app the books soak starts its workers with: the project's own app with two stand-ins, both for the
benchmark only.

- The rules analyst is replaced by one that trades on every bar (BUY when flat, SELL when long, each limit 1% through
  the last close so the next playback bar fills it), so fifteen minutes of runs make enough fills to judge.
- When the file named by SOAK_HOLD_FILE exists, the next fill booked pauses inside its transaction (after the
  position is changed, before it commits) and writes the trade's execution id to SOAK_BOOKING_FILE: the soak kills
  the worker there, so a kill in the middle of booking a fill is certain, not luck.
"""

from __future__ import annotations

import os
import time
from decimal import Decimal
from pathlib import Path

from celery.signals import worker_init

from config.celery import app

__all__ = ["app"]

THROUGH = Decimal("0.01")


@worker_init.connect
def stand_ins(**kwargs) -> None:
    import django

    django.setup()
    from portfolio import services
    from signals_app.llm.base import Answer, Exchange
    from signals_app.llm.rules import RulesAnalyst

    def trades_every_bar(self, request):
        close = Decimal(str(request.context["last_close"]))
        if request.context.get("position"):
            fields = {
                "action": "SELL",
                "entry": float(round(close * (1 - THROUGH), 2)),
                "stop_loss": None,
                "target": None,
                "confidence": 0.8,
                "reasoning": "soak: close the long on the next bar",
            }
        else:
            fields = {
                "action": "BUY",
                "entry": float(round(close * (1 + THROUGH), 2)),
                "stop_loss": float(round(close * Decimal("0.96"), 2)),
                "target": float(round(close * Decimal("1.08"), 2)),
                "confidence": 0.8,
                "reasoning": "soak: buy when flat",
            }
        return Answer(fields=fields, stop_reason="end_turn", exchange=Exchange())

    RulesAnalyst.analyse = trades_every_bar

    hold, booking = Path(os.environ["SOAK_HOLD_FILE"]), Path(os.environ["SOAK_BOOKING_FILE"])
    for name in ("_apply_buy", "_apply_sell"):
        apply = getattr(services, name)

        def held(trade, order, position, _apply=apply):
            result = _apply(trade, order, position)
            if hold.exists():
                hold.unlink(missing_ok=True)
                booking.write_text(trade.broker_execution_id)
                time.sleep(120)  # the soak kills this worker now, inside the fill's transaction
            return result

        setattr(services, name, held)

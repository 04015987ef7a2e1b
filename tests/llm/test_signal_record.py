"""The steps end to end: analyse → parse_signal → signal_record stores what the executor will act on."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from signals_app.models import LLMCall, TradingSignal
from signals_app.services import signal_record
from tests.factories import StrategyExecutionFactory
from tests.llm.conftest import NOW, message
from trading.analysis import analyse, parse_signal


def test_anthropic_buy_is_recorded_with_its_prompt_version_and_model(
    analysis_setup, anthropic_server, anthropic_analyst
):
    strategy, context, charts = analysis_setup()
    execution = StrategyExecutionFactory(strategy=strategy)
    close = context["last_close"]
    anthropic_server.reply(
        message(
            json.dumps(
                {
                    "action": "BUY",
                    "entry": close,
                    "stop_loss": round(close - 4, 2),
                    "target": round(close + 8, 2),
                    "confidence": 0.7,
                    "reasoning": "Trend and momentum agree.",
                }
            )
        )
    )

    analysis = analyse(
        strategy=strategy, context=context, charts=charts, analyst=anthropic_analyst, execution=execution
    )
    parsed = parse_signal(analysis=analysis, last_close=close, strategy=strategy)
    signal = signal_record(
        strategy=strategy,
        execution=execution,
        parsed=parsed,
        prompt_version=analysis.prompt_version,
        analyst=analysis.analyst,
        model=analysis.resolved_model,
        generated_at=NOW,
    )

    signal.refresh_from_db()
    assert (signal.action, signal.entry_price, signal.confidence) == ("BUY", Decimal(str(close)), Decimal("0.7"))
    assert signal.stop_loss < signal.entry_price < signal.take_profit
    assert signal.prompt_version == analysis.prompt_version == LLMCall.objects.get().prompt_version
    assert (signal.analyst, signal.model) == ("anthropic", "claude-sonnet-5-5-20260928")
    assert LLMCall.objects.get().execution == execution


def test_refused_answer_is_recorded_as_hold_with_the_reason(analysis_setup, anthropic_server, anthropic_analyst):
    strategy, context, charts = analysis_setup()
    anthropic_server.reply(message("I cannot help with trading.", stop_reason="refusal"))

    analysis = analyse(strategy=strategy, context=context, charts=charts, analyst=anthropic_analyst)
    parsed = parse_signal(analysis=analysis, last_close=context["last_close"], strategy=strategy)
    signal = signal_record(
        strategy=strategy,
        execution=None,
        parsed=parsed,
        prompt_version=analysis.prompt_version,
        analyst=analysis.analyst,
        model=analysis.model,
        generated_at=NOW + dt.timedelta(minutes=15),
    )

    assert signal.action == "HOLD" and signal.entry_price is None
    assert "refusal" in signal.refusal_reason
    assert TradingSignal.objects.actionable().count() == 0


def test_rules_signal_has_no_prompt_version(analysis_setup):
    strategy, context, _ = analysis_setup()

    analysis = analyse(strategy=strategy, context=context, charts=[])
    parsed = parse_signal(analysis=analysis, last_close=context["last_close"], strategy=strategy)
    signal = signal_record(
        strategy=strategy,
        execution=None,
        parsed=parsed,
        prompt_version=analysis.prompt_version,
        analyst=analysis.analyst,
        model=analysis.model,
        generated_at=NOW,
    )

    assert (signal.action, signal.analyst, signal.model, signal.prompt_version) == ("BUY", "rules", "rules", None)
    assert not LLMCall.objects.exists()

"""`manage.py analyse`: the analysis steps for one strategy, as a dry run recorded in lineage."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from lineage.models import LineageRecord
from orders.models import Order
from signals_app.models import LLMCall, TradingSignal
from tests.llm.conftest import API_KEY, fresh_rows, message
from trading.models import StrategyExecution

STEPS = [
    "load_strategy",
    "fetch_market_data",
    "calculate_indicators",
    "generate_charts",
    "llm_analysis",
    "parse_signal",
    "risk_check",
    "place_order",
    "execution_complete",
]


def analyse(*args) -> str:
    out = StringIO()
    call_command("analyse", *args, stdout=out)
    return out.getvalue()


def test_rules_run_records_every_step_as_a_dry_run_and_places_nothing(make_strategy):
    strategy = make_strategy(rows=fresh_rows())

    output = analyse(str(strategy.pk))

    execution = StrategyExecution.objects.get()
    assert (execution.dry_run, execution.status, execution.trigger) == (True, "COMPLETED", "command")
    records = list(LineageRecord.objects.for_execution(execution.pk))
    assert [r.step_name for r in records] == list(STEPS)
    assert [r.step_number for r in records] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert all(r.status == "success" for r in records)
    assert records[7].output_data["note"] == "dry run: nothing placed"
    charts = records[3].output_data["charts"]
    assert charts[0]["width"] * charts[0]["height"] / 750 <= 1600
    assert records[5].output_data["action"] == "BUY"
    # the executor's dry run: the signal is kept under the dry-run execution, and no order is placed
    assert TradingSignal.objects.get().execution == execution
    assert not Order.objects.exists() and not LLMCall.objects.exists()
    assert "Signal: BUY  entry" in output and "stop" in output and "target" in output
    assert "Tokens: none (offline rules)" in output and "Cost: $0.000000" in output


def test_anthropic_run_prints_tokens_and_cost_and_links_the_call(make_strategy, anthropic_loopback):
    strategy = make_strategy(name="acme swing", rows=fresh_rows())
    anthropic_loopback.reply(
        message(
            '{"action": "HOLD", "entry": null, "stop_loss": null, "target": null, '
            '"confidence": 0.4, "reasoning": "Mixed: RSI 52, MACD flat."}',
            input_tokens=2000,
            output_tokens=150,
            cache_read_input_tokens=1500,
        )
    )

    output = analyse("acme swing", "--analyst", "anthropic", "--model", "claude-sonnet-5-5")

    call = LLMCall.objects.get()
    assert call.execution.dry_run and call.execution.strategy == strategy
    assert anthropic_loopback.body()["messages"][0]["content"][0]["type"] == "image"
    assert "Signal: HOLD  confidence 0.4000" in output
    assert "Tokens: input 2000, cache read 1500, cache write 0, output 150" in output
    assert "Cost: $0.005650" in output
    record = LineageRecord.objects.get(step_name="llm_analysis")
    assert record.output_data["llm_call_id"] == call.pk and record.output_data["cost_usd"] == "0.005650"
    assert json.dumps(record.output_data).count(API_KEY) == 0


def test_cache_only_miss_fails_the_llm_step_with_the_reason(make_strategy, settings):
    strategy = make_strategy(rows=fresh_rows())
    settings.ANTHROPIC_API_KEY = API_KEY

    with pytest.raises(CommandError, match="no stored answer"):
        analyse(str(strategy.pk), "--analyst", "anthropic", "--llm-cache", "only")

    execution = StrategyExecution.objects.get()
    assert execution.status == "FAILED" and "no stored answer" in execution.error
    failed = LineageRecord.objects.filter(execution=execution, status="error").order_by("step_number")
    assert [record.step_name for record in failed] == ["llm_analysis", "execution_error"]


def test_strategy_without_bars_fails_at_fetch_market_data(make_strategy):
    strategy = make_strategy(rows=[])

    with pytest.raises(CommandError, match="no 1d bars"):
        analyse(str(strategy.pk))

    failed = LineageRecord.objects.filter(status="error").order_by("step_number")
    assert [record.step_name for record in failed] == ["fetch_market_data", "execution_error"]


def test_unknown_strategy_is_a_clear_error(db):
    with pytest.raises(CommandError, match="no strategy named 'nope'"):
        analyse("nope")

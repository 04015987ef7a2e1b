"""The prompt context (plain data only) and the rules analyst's vote on it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from market.clock import FixedClock
from signals_app.prompts import CONTEXT_VARIABLES
from tests.factories import PositionFactory
from tests.llm.conftest import NOW, frames_for, trending_rows
from trading.analysis import analyse, build_context, parse_signal

PLAIN = (dict, list, str, int, float, bool, type(None))


def assert_plain(value, path="context"):
    assert isinstance(value, PLAIN), f"{path} is a {type(value).__name__}"
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str)
            assert_plain(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_plain(item, f"{path}[{index}]")


def test_context_is_plain_data_with_every_documented_variable(analysis_setup):
    strategy, context, _ = analysis_setup()
    PositionFactory(strategy=strategy)

    bars, indicators = frames_for(strategy, trending_rows(80))
    context = build_context(strategy=strategy, bars_df=bars, indicators=indicators, charts=[], clock=FixedClock(NOW))

    assert_plain(context)
    assert set(context) == set(CONTEXT_VARIABLES)
    assert context["bars_shown"] == 30 and context["bars"][-1]["close"] == context["last_close"]
    assert context["now"] == NOW.isoformat()
    assert context["position"]["quantity"] == 10.0
    by_type = {item["type"]: item for item in context["indicators"]}
    assert set(by_type) == {"SUPERTREND", "EMA", "RSI", "MACD", "ATR"}
    assert set(by_type["MACD"]["latest"]) == {"macd", "signal", "histogram"}
    assert len(by_type["RSI"]["recent"]) == 5


def test_context_has_no_future_bars_by_construction(analysis_setup):
    strategy, _, _ = analysis_setup()
    rows = trending_rows(80)
    bars, indicators = frames_for(strategy, rows[:50])

    context = build_context(strategy=strategy, bars_df=bars, indicators=indicators, charts=[], clock=FixedClock(NOW))

    assert context["last_bar_time"] == rows[49][0].isoformat()


def rules(strategy, context):
    analysis = analyse(strategy=strategy, context=context, charts=[])
    return analysis, parse_signal(analysis=analysis, last_close=context["last_close"], strategy=strategy)


def test_uptrend_with_agreeing_momentum_buys_with_atr_stop_and_reward_risk_target(analysis_setup):
    strategy, context, _ = analysis_setup(reward_risk_ratio=Decimal("2.5"))

    analysis, parsed = rules(strategy, context)

    close = Decimal(str(context["last_close"]))
    atr = Decimal(str(next(i for i in context["indicators"] if i["type"] == "ATR")["latest"]["atr"]))
    assert parsed.action == "BUY" and parsed.source == "rules"
    assert parsed.entry == close
    assert parsed.stop_loss == (close - 2 * atr).quantize(Decimal("0.01"))
    assert parsed.target == (close + Decimal("2.5") * 2 * atr).quantize(Decimal("0.01"))
    assert parsed.confidence == Decimal("1.0000")
    assert "Supertrend 10/3: direction up (+1)" in parsed.reasoning
    assert analysis.llm_call is None and analysis.cost_usd == 0


def test_downtrend_with_an_open_long_sells_at_the_last_close(analysis_setup):
    strategy, context, _ = analysis_setup(rows=trending_rows(80, start=200, step=-0.6))
    PositionFactory(strategy=strategy, average_cost=Decimal("180"), stop_loss=None, take_profit=None)
    bars, indicators = frames_for(strategy, trending_rows(80, start=200, step=-0.6))
    context = build_context(strategy=strategy, bars_df=bars, indicators=indicators, charts=[], clock=FixedClock(NOW))

    _, parsed = rules(strategy, context)

    assert parsed.action == "SELL"
    assert parsed.entry == Decimal(str(context["last_close"]))
    assert "turned against the open long" in parsed.reasoning


def test_downtrend_when_flat_holds(analysis_setup):
    strategy, context, _ = analysis_setup(rows=trending_rows(80, start=200, step=-0.6))

    _, parsed = rules(strategy, context)

    assert parsed.action == "HOLD"
    assert "do not agree" in parsed.reasoning


def test_uptrend_with_an_open_long_holds_it(analysis_setup):
    strategy, context, _ = analysis_setup()
    PositionFactory(strategy=strategy)
    bars, indicators = frames_for(strategy, trending_rows(80))
    context = build_context(strategy=strategy, bars_df=bars, indicators=indicators, charts=[], clock=FixedClock(NOW))

    _, parsed = rules(strategy, context)

    assert parsed.action == "HOLD"
    assert "has not turned against it" in parsed.reasoning


@pytest.mark.parametrize(
    "indicators",
    [
        pytest.param([], id="none"),
        pytest.param([("RSI 14", "RSI", {"period": 14})], id="momentum-only"),
        pytest.param([("EMA 20", "EMA", {"period": 20})], id="trend-only"),
    ],
)
def test_without_a_trend_and_a_momentum_vote_the_rules_hold(make_strategy, indicators):
    rows = trending_rows(80)
    strategy = make_strategy(rows=rows, indicators=indicators)
    bars, frames = frames_for(strategy, rows)
    context = build_context(strategy=strategy, bars_df=bars, indicators=frames, charts=[], clock=FixedClock(NOW))

    _, parsed = rules(strategy, context)

    assert parsed.action == "HOLD"
    assert "at least one trend" in parsed.reasoning


def test_without_atr_indicator_the_stop_uses_atr_from_the_bars(make_strategy):
    rows = trending_rows(80)
    strategy = make_strategy(
        rows=rows, indicators=[("EMA 20", "EMA", {"period": 20}), ("RSI 14", "RSI", {"period": 14})]
    )
    bars, frames = frames_for(strategy, rows)
    context = build_context(strategy=strategy, bars_df=bars, indicators=frames, charts=[], clock=FixedClock(NOW))

    _, parsed = rules(strategy, context)

    assert parsed.action == "BUY"
    assert parsed.stop_loss < parsed.entry < parsed.target
    assert "14-bar ATR from the bars" in parsed.reasoning


def test_rules_are_deterministic(analysis_setup):
    strategy, context, _ = analysis_setup()

    assert rules(strategy, context)[1] == rules(strategy, context)[1]


def test_sell_answer_without_an_open_position_becomes_hold(analysis_setup, anthropic_server, anthropic_analyst):
    from tests.llm.conftest import message

    strategy, context, charts = analysis_setup()
    close = context["last_close"]
    anthropic_server.reply(
        message(
            f'{{"action": "SELL", "entry": {close}, "stop_loss": null, "target": null, "confidence": 0.7, '
            '"reasoning": "Momentum rolled over."}'
        )
    )

    analysis = analyse(strategy=strategy, context=context, charts=charts, analyst=anthropic_analyst)
    parsed = parse_signal(analysis=analysis, last_close=close, strategy=strategy)

    assert parsed.action == "HOLD"
    assert "no open position" in parsed.refusal_reason


def test_rules_answer_survives_a_json_round_trip_unchanged(analysis_setup):
    import json

    from signals_app.llm import Analysis, Answer

    strategy, context, _ = analysis_setup()
    analysis, parsed = rules(strategy, context)
    stored = json.loads(json.dumps(analysis.answer.fields))  # what lineage keeps for a resumed run

    restored = Analysis(analyst="rules", model="rules", answer=Answer(fields=stored))

    assert parse_signal(analysis=restored, last_close=context["last_close"], strategy=strategy) == parsed

"""The Anthropic analyst against the Messages API's shape: an httpx2 mock transport inside the real SDK client."""

from __future__ import annotations

import base64
import hashlib
import json
from decimal import Decimal

import pytest

from signals_app.llm import LLMError, SpendLimitReached
from signals_app.models import LLMCall
from signals_app.parsing import SIGNAL_SCHEMA
from tests.llm.conftest import API_KEY, error, message
from trading.analysis import analyse, parse_signal

BUY = json.dumps(
    {
        "action": "BUY",
        "entry": 139.5,
        "stop_loss": 135.0,
        "target": 148.5,
        "confidence": 0.68,
        "reasoning": "Close above EMA20; RSI 62 rising; MACD histogram positive.",
    }
)


def run(strategy, context, charts, analyst, **kwargs):
    analysis = analyse(strategy=strategy, context=context, charts=charts, analyst=analyst, **kwargs)
    return analysis, parse_signal(analysis=analysis, last_close=context["last_close"], strategy=strategy)


def buy_answer(context) -> str:
    close = context["last_close"]
    return json.dumps(
        {
            "action": "BUY",
            "entry": close,
            "stop_loss": round(close - 4, 2),
            "target": round(close + 8, 2),
            "confidence": 0.68,
            "reasoning": "Close above EMA20; RSI 62 rising; MACD histogram positive.",
        }
    )


def test_request_carries_images_first_schema_cache_marker_and_no_sampling_parameters(
    analysis_setup, anthropic_server, anthropic_analyst, chart_png
):
    strategy, context, charts = analysis_setup()
    anthropic_server.reply(message(buy_answer(context)))

    run(strategy, context, charts, anthropic_analyst)

    body = anthropic_server.body()
    content = body["messages"][0]["content"]
    assert [block["type"] for block in content] == ["image", "text"]
    assert content[0]["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": base64.b64encode(chart_png).decode(),
    }
    assert "ACME" in content[1]["text"] and str(context["last_close"]) in content[1]["text"]
    assert body["output_config"]["format"] == {"type": "json_schema", "schema": SIGNAL_SCHEMA}
    assert body["output_config"]["effort"] == "low"
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert body["model"] == "claude-sonnet-5-5"
    assert body["max_tokens"] == 4096
    assert not {"temperature", "top_p", "top_k", "tool_choice", "tools"} & set(body)
    request = anthropic_server.requests[0]
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["anthropic-version"] == "2026-10-21"


def test_model_per_strategy_overrides_the_default(analysis_setup, anthropic_server, anthropic_analyst):
    strategy, context, charts = analysis_setup(llm_model="claude-haiku-5-5")
    anthropic_server.reply(message(buy_answer(context)))

    analysis, _ = run(strategy, context, charts, anthropic_analyst)

    assert anthropic_server.body()["model"] == "claude-haiku-5-5"
    assert analysis.llm_call.requested_model == "claude-haiku-5-5"


def test_thinking_block_first_is_skipped_and_the_text_is_parsed(analysis_setup, anthropic_server, anthropic_analyst):
    strategy, context, charts = analysis_setup()
    anthropic_server.reply(message(buy_answer(context), thinking=True))

    _, parsed = run(strategy, context, charts, anthropic_analyst)

    assert parsed.action == "BUY"
    assert parsed.entry == Decimal(str(context["last_close"]))
    assert parsed.refusal_reason == ""


@pytest.mark.parametrize(
    "reply, reason",
    [
        pytest.param(message("I can't help with that.", stop_reason="refusal"), "'refusal'", id="refusal"),
        pytest.param(message('{"action": "BUY", "entry": 13', stop_reason="max_tokens"), "'max_tokens'", id="cut-off"),
        pytest.param(message('{"action": "BUY", "entry": }'), "not valid JSON", id="malformed-json"),
        pytest.param(message(None, thinking=True), "empty", id="thinking-only"),
    ],
)
def test_incomplete_or_malformed_answer_becomes_hold(
    analysis_setup, anthropic_server, anthropic_analyst, reply, reason
):
    strategy, context, charts = analysis_setup()
    anthropic_server.reply(reply)

    analysis, parsed = run(strategy, context, charts, anthropic_analyst)

    assert parsed.action == "HOLD"
    assert reason in parsed.refusal_reason
    assert analysis.llm_call.stop_reason == reply["stop_reason"]


def test_overloaded_529_is_retried_then_succeeds_and_the_retry_is_recorded(
    analysis_setup, anthropic_server, anthropic_analyst
):
    strategy, context, charts = analysis_setup()
    anthropic_server.reply(error(529, "overloaded_error", "Overloaded"), headers={"retry-after-ms": "1"})
    anthropic_server.reply(message(buy_answer(context)), headers={"request-id": "req_011CSuccess"})

    analysis, parsed = run(strategy, context, charts, anthropic_analyst)

    assert len(anthropic_server.requests) == 2
    assert parsed.action == "BUY"
    call = analysis.llm_call
    assert (call.retries, call.request_id, call.status) == (1, "req_011CSuccess", "ok")


def test_spend_limit_429_stops_at_once_and_is_recorded(analysis_setup, anthropic_server, anthropic_analyst):
    strategy, context, charts = analysis_setup()
    limit = error(429, "rate_limit_error", "Spend limit reached", error_code="enforced_spend_limit_reached")
    for _ in range(3):
        anthropic_server.reply(limit, headers={"retry-after": "1"})

    with pytest.raises(SpendLimitReached, match="spend limit"):
        run(strategy, context, charts, anthropic_analyst)

    assert len(anthropic_server.requests) == 1
    call = LLMCall.objects.get()
    assert call.status == "error" and "spend limit" in call.error
    assert call.response["error"]["details"]["error_code"] == "enforced_spend_limit_reached"


def test_ordinary_rate_limit_429_is_retried(analysis_setup, anthropic_server, anthropic_analyst):
    strategy, context, charts = analysis_setup()
    anthropic_server.reply(error(429, "rate_limit_error", "Too many requests"), headers={"retry-after-ms": "1"})
    anthropic_server.reply(message(buy_answer(context)))

    analysis, parsed = run(strategy, context, charts, anthropic_analyst)

    assert len(anthropic_server.requests) == 2
    assert parsed.action == "BUY"


def test_bad_request_fails_the_step_and_is_recorded_with_the_error(analysis_setup, anthropic_server, anthropic_analyst):
    strategy, context, charts = analysis_setup()
    anthropic_server.reply(error(400, "invalid_request_error", "temperature: not supported on this API version"))

    with pytest.raises(LLMError, match="400: invalid_request_error"):
        run(strategy, context, charts, anthropic_analyst)

    assert len(anthropic_server.requests) == 1
    assert LLMCall.objects.get().error.startswith("Anthropic API 400")


def test_call_is_audited_without_credentials_and_with_images_by_key_and_hash(
    analysis_setup, anthropic_server, anthropic_analyst, chart_png
):
    strategy, context, charts = analysis_setup()
    anthropic_server.reply(
        message(buy_answer(context), input_tokens=2150, output_tokens=142, cache_read_input_tokens=1320)
    )

    analysis, _ = run(strategy, context, charts, anthropic_analyst)

    call = LLMCall.objects.get()
    assert call == analysis.llm_call
    stored = json.dumps([call.request, call.request_headers, call.response])
    assert API_KEY not in stored and base64.b64encode(chart_png).decode()[:200] not in stored
    image = call.request["messages"][0]["content"][0]["source"]
    assert image["key"] == charts[0]["key"]
    assert image["sha256"] == hashlib.sha256(chart_png).hexdigest()
    assert call.request_headers["anthropic-version"] == "2026-10-21"
    assert call.response["content"][0]["type"] == "text"
    assert (call.resolved_model, call.stop_reason) == ("claude-sonnet-5-5-20260928", "end_turn")
    assert (call.input_tokens, call.output_tokens, call.cache_read_input_tokens) == (2150, 142, 1320)
    # Sonnet 5.5 per million tokens: 2150 x $2 in + 142 x $10 out + 1320 x $0.10 cache read.
    assert call.cost_usd == Decimal("0.005852")
    assert call.prompt_version.template.name == "Default chart analysis"
    assert call.latency_ms >= 0


def test_cache_use_answers_an_identical_request_from_the_stored_response(
    analysis_setup, anthropic_server, anthropic_analyst
):
    strategy, context, charts = analysis_setup()
    anthropic_server.reply(message(buy_answer(context)))
    first, first_signal = run(strategy, context, charts, anthropic_analyst)

    second, second_signal = run(strategy, context, charts, anthropic_analyst, llm_cache="use")

    assert len(anthropic_server.requests) == 1
    assert second.from_cache and second.cost_usd == 0
    assert second.llm_call.from_cache and second.llm_call.cached_from == first.llm_call
    assert second.llm_call.cost_usd == 0 and second.llm_call.input_tokens == 0
    assert second_signal == first_signal


def test_cache_off_always_sends(analysis_setup, anthropic_server, anthropic_analyst):
    strategy, context, charts = analysis_setup()
    anthropic_server.reply(message(buy_answer(context))).reply(message(buy_answer(context)))

    run(strategy, context, charts, anthropic_analyst)
    second, _ = run(strategy, context, charts, anthropic_analyst, llm_cache="off")

    assert len(anthropic_server.requests) == 2
    assert not second.from_cache


def test_cache_only_miss_is_an_error_and_sends_nothing(analysis_setup, anthropic_server, anthropic_analyst):
    strategy, context, charts = analysis_setup()

    with pytest.raises(LLMError, match="no stored answer"):
        run(strategy, context, charts, anthropic_analyst, llm_cache="only")

    assert anthropic_server.requests == []


def test_cache_misses_when_the_rendered_prompt_changes(analysis_setup, anthropic_server, anthropic_analyst):
    strategy, context, charts = analysis_setup()
    anthropic_server.reply(message(buy_answer(context)))
    run(strategy, context, charts, anthropic_analyst)

    with pytest.raises(LLMError, match="no stored answer"):
        run(strategy, {**context, "now": "2025-04-16T20:00:00+00:00"}, charts, anthropic_analyst, llm_cache="only")


def test_legacy_model_gets_a_strict_tool_instead_of_output_config(analysis_setup, anthropic_server, anthropic_analyst):
    strategy, context, charts = analysis_setup(llm_model="claude-3-7-sonnet-latest")
    fields = json.loads(buy_answer(context))
    anthropic_server.reply(
        {
            **message(None),
            "content": [{"type": "tool_use", "id": "toolu_01", "name": "emit_signal", "input": fields}],
            "stop_reason": "tool_use",
        }
    )

    _, parsed = run(strategy, context, charts, anthropic_analyst)

    body = anthropic_server.body()
    assert "output_config" not in body
    assert body["tools"][0]["strict"] is True and body["tools"][0]["input_schema"] == SIGNAL_SCHEMA
    assert parsed.action == "BUY"


def test_missing_api_key_is_a_clear_error(analysis_setup, anthropic_analyst, settings):
    strategy, context, charts = analysis_setup()
    settings.ANTHROPIC_API_KEY = ""

    with pytest.raises(LLMError, match="ANTHROPIC_API_KEY is not set"):
        run(strategy, context, charts, anthropic_analyst)

"""The OpenAI-compatible analyst (Ollama, vLLM, LM Studio) against the chat.completions shape."""

from __future__ import annotations

import base64
import json

from signals_app.models import LLMCall
from signals_app.parsing import SIGNAL_SCHEMA
from trading.analysis import analyse, parse_signal


def completion(content: str | None, *, finish_reason: str = "stop", refusal: str | None = None) -> dict:
    return {
        "id": "chatcmpl-7Xq2",
        "object": "chat.completion",
        "created": 1764158400,
        "model": "llava:13b",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 1400, "completion_tokens": 120, "total_tokens": 1520},
    }


def buy(context) -> str:
    close = context["last_close"]
    return json.dumps(
        {
            "action": "BUY",
            "entry": close,
            "stop_loss": round(close - 3, 2),
            "target": round(close + 6, 2),
            "confidence": 0.66,
            "reasoning": "Uptrend intact; RSI 60.",
        }
    )


def run(strategy, context, charts, analyst):
    analysis = analyse(strategy=strategy, context=context, charts=charts, analyst=analyst)
    return analysis, parse_signal(analysis=analysis, last_close=context["last_close"], strategy=strategy)


def test_request_sends_images_as_data_urls_and_a_json_schema(analysis_setup, openai_server, openai_analyst, chart_png):
    strategy, context, charts = analysis_setup()
    openai_server.reply(completion(buy(context)))

    analysis, parsed = run(strategy, context, charts, openai_analyst)

    body = openai_server.body()
    assert body["model"] == "llava:13b"
    user = body["messages"][1]["content"]
    assert user[0]["type"] == "text"
    assert user[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(chart_png).decode()
    assert body["response_format"]["json_schema"]["schema"] == SIGNAL_SCHEMA
    assert body["messages"][0]["role"] == "system"
    assert parsed.action == "BUY"
    call = LLMCall.objects.get()
    assert call.analyst == "openai" and call.cost_usd is None  # a local model has no price in the table
    assert call.request["messages"][1]["content"][1]["image_url"]["sha256"] == charts[0]["sha256"]
    assert "ollama-test-key" not in json.dumps(call.request_headers)


def test_server_without_json_schema_gets_the_text_format(analysis_setup, openai_server, openai_analyst):
    strategy, context, charts = analysis_setup()
    close = context["last_close"]
    openai_server.reply((400, {"error": {"message": "response_format json_schema is not supported", "code": 400}}))
    openai_server.reply(
        completion(
            f"Signal: BUY\nEntry Price: ${close}\nStop Loss: ${close - 3:.2f}\nTarget Price: ${close + 6:.2f}\n"
            "Confidence: 64%\nReasoning: Higher lows."
        )
    )

    _, parsed = run(strategy, context, charts, openai_analyst)

    assert "response_format" in openai_server.body(0) and "response_format" not in openai_server.body(1)
    assert parsed.action == "BUY" and parsed.source == "text"
    assert str(parsed.confidence) == "0.6400"


def test_length_cut_off_becomes_hold(analysis_setup, openai_server, openai_analyst):
    strategy, context, charts = analysis_setup()
    openai_server.reply(completion('{"action": "BUY", "entry"', finish_reason="length"))

    _, parsed = run(strategy, context, charts, openai_analyst)

    assert parsed.action == "HOLD" and "max_tokens" in parsed.refusal_reason


def test_refusal_becomes_hold(analysis_setup, openai_server, openai_analyst):
    strategy, context, charts = analysis_setup()
    openai_server.reply(completion(None, refusal="I can't provide financial advice."))

    _, parsed = run(strategy, context, charts, openai_analyst)

    assert parsed.action == "HOLD" and "refusal" in parsed.refusal_reason

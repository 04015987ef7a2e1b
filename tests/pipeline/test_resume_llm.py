"""A resumed run makes no second LLM call: Anthropic stood in for by a loopback HTTP server that counts requests."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lineage.models import LineageRecord
from signals_app.models import Analyst, LLMCall, TradingSignal
from tests.pipeline.conftest import strategy_with_indicators
from trading.executor import execute
from trading.models import ExecutionStatus, StrategyExecution
from trading.services import execution_start


def message(text: str) -> dict:
    """A Messages API response with one text block, as the server sends it."""
    return {
        "id": "msg_01Loopback",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-5-5-20260928",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1890, "output_tokens": 96},
    }


ANSWER = {"action": "HOLD", "entry": None, "stop_loss": None, "target": None, "confidence": 0.55, "reasoning": "flat"}


@pytest.fixture
def anthropic_loopback(settings):
    requests_seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            requests_seen.append(json.loads(self.rfile.read(length)))
            body = json.dumps(message(json.dumps(ANSWER))).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("request-id", f"req_{len(requests_seen):03d}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.ANTHROPIC_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}"
    settings.ANTHROPIC_API_KEY = "sk-ant-test-loopback"
    yield requests_seen
    server.shutdown()
    server.server_close()


@pytest.mark.django_db
def test_a_run_resumed_after_the_analysis_was_recorded_does_not_ask_the_llm_again(owner, anthropic_loopback):
    strategy = strategy_with_indicators(owner, analyst=Analyst.ANTHROPIC)
    execution = execution_start(strategy=strategy, trigger="manual")
    first = execute(execution.pk)
    assert first.status == ExecutionStatus.COMPLETED, first.error
    assert len(anthropic_loopback) == 1
    # The worker died after the analysis and the signal were recorded, before the rest.
    LineageRecord.objects.filter(
        execution=execution, step_name__in=["risk_check", "place_order", "execution_complete"]
    ).delete()
    StrategyExecution.objects.filter(pk=execution.pk).update(status=ExecutionStatus.RUNNING, finished_at=None)

    again = execute(execution.pk)

    assert again.status == ExecutionStatus.COMPLETED
    assert len(anthropic_loopback) == 1
    assert LLMCall.objects.filter(execution=execution).count() == 1
    assert TradingSignal.objects.filter(execution=execution).count() == 1
    prompt = LineageRecord.objects.get(execution=execution, step_name="llm_analysis").output_data["rendered_prompt"]
    assert prompt and strategy.symbol.symbol in prompt

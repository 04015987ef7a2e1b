"""Fixtures for the LLM tests: Anthropic and OpenAI-compatible servers faked at the HTTP boundary (an httpx2 mock
transport handed to the real SDK clients), strategies with synthetic bars, and a chart in local file storage."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from collections.abc import Callable
from decimal import Decimal

import anthropic
import httpx2
import pandas as pd
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from market.clock import FixedClock
from market.frames import frame_from_rows
from market.indicators import compute
from market.models import Bar, BarSize, IndicatorType
from signals_app.llm.anthropic import AnthropicAnalyst
from signals_app.llm.openai import OpenAIAnalyst
from signals_app.models import Analyst
from tests.factories import IndicatorConfigFactory, StrategyFactory, StrategyIndicatorFactory, SymbolFactory
from trading.analysis import build_context

API_KEY = "sk-ant-test-secret-0123456789"
FIRST = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)


def fresh_rows(count: int = 80) -> list[tuple]:
    """`trending_rows` whose last bar is today's session key: fresh for a run on the wall clock now."""
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return trending_rows(count, first=today - dt.timedelta(days=count - 1))


NOW = dt.datetime(2025, 4, 15, 20, 0, tzinfo=dt.UTC)


def message(text: str | None = None, *, stop_reason: str = "end_turn", thinking: bool = False, **usage) -> dict:
    """A Messages API response as the server sends it (shape of the SDK's recorded fixtures)."""
    content = []
    if thinking:
        content.append({"type": "thinking", "thinking": "", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA"})
    if text is not None:
        content.append({"type": "text", "text": text})
    return {
        "id": "msg_01Egs18hRzhru3uGon3qesbA",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-5-5-20260928",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.get("input_tokens", 1890),
            "cache_creation_input_tokens": usage.get("cache_creation_input_tokens", 0),
            "cache_read_input_tokens": usage.get("cache_read_input_tokens", 1320),
            "cache_creation": {
                "ephemeral_5m_input_tokens": usage.get("cache_creation_input_tokens", 0),
                "ephemeral_1h_input_tokens": 0,
            },
            "output_tokens": usage.get("output_tokens", 96),
            "service_tier": "standard",
            "inference_geo": "not_available",
        },
    }


def error(status: int, kind: str, text: str, **details) -> tuple[int, dict]:
    body = {"type": "error", "error": {"type": kind, "message": text}, "request_id": "req_err_1"}
    if details:
        body["error"]["details"] = details
    return status, body


class FakeServer:
    """Answers each request with the next queued (status, json, headers); records every request it got."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.queue: list[tuple[int, dict, dict]] = []
        self.requests: list[httpx2.Request] = []

    def reply(self, body: dict | tuple[int, dict], headers: dict | None = None) -> FakeServer:
        status, payload = body if isinstance(body, tuple) else (200, body)
        self.queue.append((status, payload, {"request-id": f"req_{len(self.queue) + 1:03d}", **(headers or {})}))
        return self

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        assert request.url.path.endswith(self.path), request.url.path
        self.requests.append(request)
        if not self.queue:
            return httpx2.Response(500, json={"type": "error", "error": {"type": "api_error", "message": "no reply"}})
        status, payload, headers = self.queue.pop(0)
        return httpx2.Response(status, json=payload, headers=headers)

    def body(self, index: int = -1) -> dict:
        return json.loads(self.requests[index].content)


@pytest.fixture
def anthropic_server() -> FakeServer:
    return FakeServer("/v1/messages")


@pytest.fixture
def anthropic_analyst(anthropic_server, settings) -> AnthropicAnalyst:
    settings.ANTHROPIC_API_KEY = API_KEY
    transport = httpx2.MockTransport(anthropic_server.handler)
    return AnthropicAnalyst(http_client=anthropic.DefaultHttpxClient(transport=transport))


@pytest.fixture
def openai_server() -> FakeServer:
    return FakeServer("/chat/completions")


@pytest.fixture
def openai_analyst(openai_server, settings) -> OpenAIAnalyst:
    settings.OPENAI_BASE_URL = "http://127.0.0.1:11434/v1"
    settings.OPENAI_API_KEY = "ollama-test-key"
    settings.OPENAI_MODEL = "llava:13b"
    transport = httpx2.MockTransport(openai_server.handler)
    return OpenAIAnalyst(http_client=httpx2.Client(transport=transport))


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }


def trending_rows(
    count: int, *, start: float = 100.0, step: float = 0.5, wiggle: float = 0.8, first: dt.datetime = FIRST
) -> list[tuple]:
    """Daily bars from `first` that drift by `step` a day with a small zig-zag, so every indicator has a clear
    reading."""
    rows = []
    price = start
    for n in range(count):
        open_ = price
        close = price + step + (wiggle if n % 3 == 0 else -wiggle / 2)
        high, low = max(open_, close) + 1, min(open_, close) - 1
        rows.append(
            (
                first + dt.timedelta(days=n),
                Decimal(f"{open_:.2f}"),
                Decimal(f"{high:.2f}"),
                Decimal(f"{low:.2f}"),
                Decimal(f"{close:.2f}"),
                Decimal(1_000_000),
            )
        )
        price = close
    return rows


STANDARD_INDICATORS = [
    ("Supertrend 10/3", IndicatorType.SUPERTREND, {"period": 10, "multiplier": 3}),
    ("EMA 20", IndicatorType.EMA, {"period": 20}),
    ("RSI 14", IndicatorType.RSI, {"period": 14}),
    ("MACD 12/26/9", IndicatorType.MACD, {"fast": 12, "slow": 26, "signal": 9}),
    ("ATR 14", IndicatorType.ATR, {"period": 14}),
]


@pytest.fixture
def make_strategy(db) -> Callable:
    def make(*, rows: list[tuple] | None = None, indicators=STANDARD_INDICATORS, analyst=Analyst.RULES, **fields):
        symbol = SymbolFactory(symbol=fields.pop("ticker", "ACME"), name="Acme Corp")
        strategy = StrategyFactory(symbol=symbol, analyst=analyst, lookback_bars=60, **fields)
        for name, kind, params in indicators:
            config = IndicatorConfigFactory(owner=strategy.owner, name=name, indicator_type=kind, parameters=params)
            StrategyIndicatorFactory(strategy=strategy, indicator=config)
        rows = trending_rows(80) if rows is None else rows
        Bar.objects.bulk_create(
            Bar(symbol=symbol, bar_size=BarSize.D1, timestamp=t, open=o, high=h, low=lo, close=c, volume=v)
            for t, o, h, lo, c, v in rows
        )
        return strategy

    return make


def frames_for(strategy, rows: list[tuple]) -> tuple[pd.DataFrame, dict]:
    bars = frame_from_rows(rows)
    indicators = {
        link.indicator.name: compute(bars, link.indicator.indicator_type, link.indicator.parameters)
        for link in strategy.strategy_indicators.select_related("indicator")
    }
    return bars, indicators


def png_bytes(width: int = 320, height: int = 180) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure = plt.figure(figsize=(width / 100, height / 100), dpi=100)
    figure.add_subplot().plot([1, 3, 2, 4])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def chart_png() -> bytes:
    return png_bytes()


@pytest.fixture
def stored_chart(chart_png, media_in_tmp) -> dict:
    key = default_storage.save("charts/acme-1d.png", ContentFile(chart_png))
    return {
        "key": key,
        "sha256": hashlib.sha256(chart_png).hexdigest(),
        "bytes": len(chart_png),
        "width": 320,
        "height": 180,
        "title": "ACME 1d",
    }


@pytest.fixture
def analysis_setup(make_strategy, stored_chart):
    """A strategy on a steady uptrend, its context at NOW and one stored chart."""

    def make(**fields):
        rows = fields.pop("rows", None) or trending_rows(80)
        strategy = make_strategy(rows=rows, **fields)
        bars, indicators = frames_for(strategy, rows)
        context = build_context(
            strategy=strategy, bars_df=bars, indicators=indicators, charts=[stored_chart], clock=FixedClock(NOW)
        )
        return strategy, context, [stored_chart]

    return make


@pytest.fixture
def anthropic_loopback(settings):
    """A real HTTP server on 127.0.0.1 speaking the Messages API from a FakeServer's queue; ANTHROPIC_BASE_URL points
    at it, so code that builds its own client (the analyse command) is tested without any patching."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    fake = FakeServer("/v1/messages")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("content-length", 0))
            request = httpx2.Request(
                "POST", f"http://127.0.0.1{self.path}", headers=dict(self.headers), content=self.rfile.read(length)
            )
            response = fake.handler(request)
            self.send_response(response.status_code)
            for name, value in response.headers.items():
                if name.lower() not in {"content-length", "transfer-encoding"}:
                    self.send_header(name, value)
            self.send_header("content-length", str(len(response.content)))
            self.end_headers()
            self.wfile.write(response.content)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.ANTHROPIC_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}"
    settings.ANTHROPIC_API_KEY = API_KEY
    yield fake
    server.shutdown()
    server.server_close()

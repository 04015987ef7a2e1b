"""Real history for replay tests: SPY daily 2009-2012 (Yahoo, via mplfinance's examples), loaded as Bar rows."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from market.frames import frame_from_rows
from market.models import Bar, BarSize, Symbol
from tests.books import books_agree_with_their_trades  # noqa: F401  (autouse: the books invariant after each test)

SPY_CSV = Path(__file__).parent / "data" / "SPY_daily_2009-2012.csv"


def spy_rows() -> list[tuple]:
    """(timestamp, open, high, low, close, volume) per session, keyed at 00:00 UTC of the session date."""
    rows = []
    with SPY_CSV.open() as handle:
        for line in csv.DictReader(handle):
            day = dt.date.fromisoformat(line["Date"])
            rows.append(
                (
                    dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC),
                    Decimal(line["Open"]),
                    Decimal(line["High"]),
                    Decimal(line["Low"]),
                    Decimal(line["Close"]),
                    Decimal(line["Volume"]),
                )
            )
    return rows


@pytest.fixture(scope="session")
def spy_frame():
    return frame_from_rows(spy_rows())


@pytest.fixture
def spy(db) -> Symbol:
    symbol = Symbol.objects.create(symbol="SPY", name="SPDR S&P 500 ETF", exchange="ARCA")
    Bar.objects.bulk_create(
        Bar(symbol=symbol, bar_size=BarSize.D1, timestamp=t, open=o, high=h, low=lo, close=c, volume=v)
        for t, o, h, lo, c, v in spy_rows()
    )
    return symbol


@pytest.fixture
def rules_strategy(spy, owner):
    """A daily SPY strategy voted by Supertrend, EMA, RSI, MACD and ATR, trading through a simulated account."""
    from brokers.models import BrokerConnection, BrokerKind
    from market.models import IndicatorConfig
    from signals_app.models import Analyst
    from trading.models import Strategy, StrategyIndicator

    connection = BrokerConnection.objects.create(owner=owner, name="paper", kind=BrokerKind.SIMULATED)
    strategy = Strategy.objects.create(
        owner=owner,
        name="SPY trend",
        symbol=spy,
        bar_size=BarSize.D1,
        lookback_bars=60,
        analyst=Analyst.RULES,
        broker_connection=connection,
        max_position_value=Decimal("50000"),
        max_orders_per_day=4,
        min_confidence=Decimal("0.6"),
        is_active=False,  # no schedule: the tests replay it, nothing runs it live
    )
    for position, (kind, params) in enumerate(
        [("SUPERTREND", {}), ("EMA", {"period": 20}), ("RSI", {}), ("MACD", {}), ("ATR", {})]
    ):
        config = IndicatorConfig.objects.create(
            owner=owner, name=f"{kind} {position}", indicator_type=kind, parameters=params
        )
        StrategyIndicator.objects.create(strategy=strategy, indicator=config, position=position)
    return strategy


class StubAnthropic:
    """A loopback server that answers the Messages API like Anthropic does, and counts what reaches it.

    The decision is a pure function of the prompt: the latest close is read from the prompt's "close X." and the
    action from a hash of the prompt text, so the same prompt always gets the same answer (a BUY near the close,
    a SELL at the close, or a HOLD)."""

    INPUT_TOKENS, OUTPUT_TOKENS = 1800, 220

    def __init__(self) -> None:
        import http.server
        import threading

        self.requests: list[dict] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                import json

                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(body)
                payload = json.dumps(stub.answer(body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("request-id", f"req_stub_{len(stub.requests)}")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def prompt(self, body: dict) -> str:
        return next(b["text"] for b in body["messages"][0]["content"] if b["type"] == "text")

    def answer(self, body: dict) -> dict:
        import hashlib
        import json
        import re

        prompt = self.prompt(body)
        close = float(re.search(r"close (\d+(?:\.\d+)?)\.", prompt).group(1))
        pick = int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 4
        if pick == 0:
            decision = {"action": "BUY", "entry": close, "stop_loss": round(close * 0.97, 2),
                        "target": round(close * 1.06, 2), "confidence": 0.72,
                        "reasoning": "Close above the rising EMA with RSI 58: momentum favours a long."}  # fmt: skip
        elif pick == 1:
            decision = {"action": "SELL", "entry": close, "stop_loss": None, "target": None, "confidence": 0.66,
                        "reasoning": "MACD histogram turned negative under the EMA: close the long."}  # fmt: skip
        else:
            decision = {"action": "HOLD", "entry": None, "stop_loss": None, "target": None,
                        "confidence": 0.4 + pick / 20, "reasoning": "Mixed readings: no edge either way."}  # fmt: skip
        return {
            "id": f"msg_stub_{len(self.requests)}",
            "type": "message",
            "role": "assistant",
            "model": body["model"] + "-20261001",
            "content": [{"type": "text", "text": json.dumps(decision)}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": self.INPUT_TOKENS,
                "output_tokens": self.OUTPUT_TOKENS,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_anthropic(settings):
    stub = StubAnthropic()
    settings.ANTHROPIC_BASE_URL = stub.url
    settings.ANTHROPIC_API_KEY = "sk-ant-test-not-a-real-key"
    settings.LLM_MODEL = "claude-sonnet-5-5"
    yield stub
    stub.close()

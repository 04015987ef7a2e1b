"""Fixtures for the pages and the API: a user's whole world (a strategy that ran, with its lineage, signal, order,
fill, position, snapshots, prompts and indicators), and signed-in clients."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from orders.models import OrderSource
from orders.statuses import OrderStatus
from tests.factories import (
    BarFactory,
    BrokerConnectionFactory,
    IndicatorConfigFactory,
    LineageRecordFactory,
    NotificationFactory,
    OrderFactory,
    OrderStatusChangeFactory,
    PortfolioSnapshotFactory,
    PositionFactory,
    PromptTemplateFactory,
    PromptVersionFactory,
    StrategyExecutionFactory,
    StrategyFactory,
    StrategyIndicatorFactory,
    SymbolFactory,
    TradeFactory,
    TradingSignalFactory,
)

# A 1x1 transparent PNG: what the chart view streams back is checked byte for byte.
TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


@dataclass
class World:
    user: object
    symbol: object
    connection: object
    indicator: object
    strategy: object
    execution: object
    running: object
    signal: object
    order: object
    open_order: object
    position: object
    prompt: object
    prompt_versions: list
    chart_key: str


def _lineage(execution, *, symbol: str, chart_key: str, signal_id: int, order) -> None:
    steps = [
        (
            "load_strategy",
            {"strategy_id": execution.strategy_id, "trigger": "manual", "dry_run": False},
            {
                "strategy": {
                    "id": execution.strategy_id,
                    "name": execution.strategy.name,
                    "symbol": symbol,
                    "bar_size": "1d",
                    "lookback_bars": 120,
                    "analyst": "rules",
                    "indicators": [{"name": "RSI 14", "type": "RSI", "params": {"period": 14}}],
                    "risk": {"risk_per_trade": "0.0100", "max_position_value": "10000.00"},
                },
                "is_active": True,
            },
        ),
        (
            "fetch_market_data",
            {"symbol": symbol, "bar_size": "1d", "bars_wanted": 134},
            {
                "now": "2024-03-01T00:00:00+00:00",
                "source": "stored",
                "series": {
                    "1d": {
                        "count": 134,
                        "start": "2023-08-20T00:00:00+00:00",
                        "end": "2024-03-01T00:00:00+00:00",
                        "last_close": "101.25",
                    }
                },
            },
        ),
        (
            "calculate_indicators",
            {"indicators": ["RSI 14"], "bars": 134},
            {"latest": {"RSI 14": {"rsi": 61.2345}}, "count": {"RSI 14": 120}},
        ),
        (
            "generate_charts",
            {"symbol": symbol, "timeframes": ["1d"]},
            {
                "charts": [
                    {
                        "key": chart_key,
                        "sha256": "ab" * 32,
                        "width": 1,
                        "height": 1,
                        "bar_size": "1d",
                        "title": f"{symbol} 1d",
                    }
                ],
                "chart_count": 1,
                "chart_keys": [chart_key],
            },
        ),
        (
            "llm_analysis",
            {"chart_keys": [chart_key], "analyst": "rules", "prompt_version_id": None},
            {
                "analyst": "rules",
                "model": "rules-v1",
                "text": "Trend up; RSI 61 is not overbought.",
                "stop_reason": "end_turn",
                "from_cache": False,
            },
        ),
        (
            "parse_signal",
            {"analysis_text_length": 36, "last_close": "101.25"},
            {
                "signal_id": signal_id,
                "action": "BUY",
                "entry": "100.00",
                "stop_loss": "95.00",
                "target": "110.00",
                "confidence": "0.75",
                "reasoning": "Trend up.",
                "refusal_reason": "",
                "source": "json",
            },
        ),
        (
            "risk_check",
            {"signal_id": signal_id, "action": "BUY"},
            {
                "action": "BUY",
                "allowed": True,
                "quantity": "10",
                "checks": [{"name": "kill_switch", "passed": True, "detail": "off"}],
                "refusals": [],
                "sizing": None,
            },
        ),
        (
            "place_order",
            {"signal_id": signal_id, "action": "BUY", "allowed": True},
            {
                "order_ids": [order.pk],
                "orders": [
                    {
                        "id": order.pk,
                        "client_order_id": order.client_order_id,
                        "broker_order_id": "",
                        "leg": "entry",
                        "side": "BUY",
                        "quantity": "10",
                        "order_type": "LMT",
                        "limit_price": "100.00",
                        "stop_price": None,
                        "tif": "DAY",
                        "status": order.status,
                        "status_reason": "",
                    }
                ],
                "note": f"BUY 10 {symbol} limit 100.00 DAY",
            },
        ),
        (
            "execution_complete",
            {"execution_id": str(execution.pk)},
            {
                "status": "COMPLETED",
                "signal": "BUY",
                "signal_id": signal_id,
                "orders_placed": 1,
                "order_ids": [order.pk],
                "total_duration_ms": 840,
            },
        ),
    ]
    for number, (name, inp, out) in enumerate(steps, start=1):
        LineageRecordFactory(
            execution=execution,
            step_number=number,
            step_name=name,
            input_data=inp,
            output_data=out,
            duration_ms=10 * number,
        )


@pytest.fixture
def make_world(db, settings, tmp_path):
    """Build a complete, realistic world for a user: every page has something of theirs to show."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }

    def build(user, *, ticker: str = "SPY") -> World:
        from django.core.files.storage import default_storage

        symbol = SymbolFactory(symbol=f"{ticker}{user.pk}", name=f"{ticker} Trust {user.pk}")
        for day in range(3):
            BarFactory(symbol=symbol, timestamp=dt.datetime(2024, 2, 27 + day, tzinfo=dt.UTC))
        connection = BrokerConnectionFactory(owner=user, name=f"Paper {user.pk}")
        indicator = IndicatorConfigFactory(owner=user, name=f"RSI 14 ({user.pk})")
        strategy = StrategyFactory(
            owner=user, name=f"{ticker} swing {user.pk}", symbol=symbol, broker_connection=connection
        )
        StrategyIndicatorFactory(strategy=strategy, indicator=indicator)
        started = timezone.now() - dt.timedelta(hours=1)
        execution = StrategyExecutionFactory(strategy=strategy, finished=True, started_at=started, trigger="manual")
        running = StrategyExecutionFactory(strategy=strategy, started_at=timezone.now())
        chart_key = default_storage.save(f"charts/{strategy.pk}/{execution.pk}/chart.png", ContentFile(TINY_PNG))
        signal = TradingSignalFactory(strategy=strategy, execution=execution)
        order = OrderFactory(
            owner=user,
            strategy=strategy,
            signal=signal,
            symbol=symbol,
            broker_connection=connection,
            source=OrderSource.STRATEGY,
            filled=True,
        )
        OrderStatusChangeFactory(order=order, from_status=OrderStatus.PENDING, to_status=OrderStatus.SUBMITTING)
        TradeFactory(order=order)
        NotificationFactory(
            owner=user,
            kind="order_filled",
            strategy=strategy,
            order=order,
            execution=None,
            subject=f"Filled: BUY 10 {symbol.symbol} @ 100.00",
            body=f"BUY 10 {symbol.symbol} filled at 100.00",
        )
        open_order = OrderFactory(owner=user, symbol=symbol, broker_connection=connection, status=OrderStatus.SUBMITTED)
        position = PositionFactory(strategy=strategy)
        for days in (3, 2, 1):
            PortfolioSnapshotFactory(
                owner=user, cash=Decimal("99000.00") + days, taken_at=timezone.now() - dt.timedelta(days=days)
            )
        prompt = PromptTemplateFactory(owner=user, name=f"My prompt {user.pk}")
        versions = [
            PromptVersionFactory(template=prompt, body="Analyse {{ symbol.symbol }}.\nSay HOLD when unsure."),
            PromptVersionFactory(
                template=prompt, body="Analyse {{ symbol.symbol }} on {{ bar_size }} bars.\nSay HOLD when unsure."
            ),
        ]
        _lineage(execution, symbol=symbol.symbol, chart_key=chart_key, signal_id=signal.pk, order=order)
        LineageRecordFactory(
            execution=running,
            step_number=1,
            step_name="load_strategy",
            output_data={"strategy": {"name": strategy.name}},
        )
        return World(
            user,
            symbol,
            connection,
            indicator,
            strategy,
            execution,
            running,
            signal,
            order,
            open_order,
            position,
            prompt,
            versions,
            chart_key,
        )

    return build


@pytest.fixture
def world(owner, make_world) -> World:
    return make_world(owner)


@pytest.fixture
def other_world(other_user, make_world) -> World:
    return make_world(other_user, ticker="QQQ")


@pytest.fixture
def client_of():
    def signed_in(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return signed_in


@pytest.fixture
def owner_client(owner, client_of) -> Client:
    return client_of(owner)


@pytest.fixture
def api_of():
    def signed_in(user) -> APIClient:
        client = APIClient()
        client.force_authenticate(user)
        return client

    return signed_in

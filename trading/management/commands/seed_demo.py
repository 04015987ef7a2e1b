"""`python manage.py seed_demo`: the demo `make run` starts with. Safe to run again: it creates what is missing and
changes nothing a person may have edited since (the demo user's password, the strategy's settings)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from brokers.models import BrokerConnection, BrokerKind
from core.models import UserProfile
from market.indicators import indicator_spec
from market.models import AssetType, BarSize, IndicatorConfig, IndicatorType, MarketDataSource, Symbol
from market.services import ImportSummary, import_bars_file, symbol_get_or_create
from signals_app.models import Analyst
from trading.management.commands.run_strategy import run_and_print
from trading.models import Strategy
from trading.services import strategy_create, strategy_save

DEMO_USERNAME = "demo"
DEMO_BROKER_NAME = "Simulated broker"
DEMO_STRATEGY_NAME = "SPY demo"
DEMO_SCHEDULE = "* * * * *"


@dataclass(frozen=True)
class DemoSymbol:
    symbol: str
    name: str
    asset_type: str
    file_name: str


DEMO_SYMBOLS = (
    DemoSymbol("SPY", "SPDR S&P 500 ETF Trust", AssetType.ETF, "SPY_daily_2008-2017_yahoo_mplfinance.csv"),
    DemoSymbol("AAPL", "Apple Inc.", AssetType.STOCK, "AAPL_daily_2004-2018_yahoo_mplfinance.csv"),
    DemoSymbol("GOOG", "Alphabet Inc. Class C", AssetType.STOCK, "GOOG_daily_2004-2018_yahoo_mplfinance.csv"),
)

# One configuration of each indicator, with the registry's default parameters, in the order they are charted.
DEMO_INDICATORS = (
    IndicatorType.RSI,
    IndicatorType.MACD,
    IndicatorType.ATR,
    IndicatorType.SMA,
    IndicatorType.EMA,
    IndicatorType.BB,
    IndicatorType.SUPERTREND,
)


def demo_data_dir() -> Path:
    return Path(apps.get_app_config("market").path) / "data"


def import_demo_bars(*, demo: DemoSymbol) -> ImportSummary:
    """Upsert one demo file's daily bars (00:00 UTC of each session date) through the market import. Rows whose
    prices contradict each other are skipped and listed in the summary."""
    symbol_get_or_create(ticker=demo.symbol, name=demo.name, asset_type=demo.asset_type)
    return import_bars_file(demo_data_dir() / demo.file_name, symbol=demo.symbol, bar_size=BarSize.D1)


def ensure_demo_user() -> tuple[object, str | None]:
    """The demo user, and its password when it was created just now (None otherwise: it is never shown again).
    Staff and superuser, so the admin works for the person trying the demo on their own machine."""
    User = get_user_model()
    user = User.objects.filter(username=DEMO_USERNAME).first()
    if user is not None:
        return user, None
    password = secrets.token_urlsafe(12)
    user = User.objects.create_user(
        DEMO_USERNAME, email="demo@localhost", password=password, is_staff=True, is_superuser=True
    )
    UserProfile.objects.get_or_create(user=user, defaults={"time_zone": "America/New_York"})
    return user, password


def ensure_demo_strategy(*, owner, symbol: Symbol) -> Strategy:
    """The simulated broker connection, one configuration per indicator, and the demo strategy on `symbol`."""
    broker, _ = BrokerConnection.objects.get_or_create(
        owner=owner, name=DEMO_BROKER_NAME, defaults={"kind": BrokerKind.SIMULATED}
    )
    indicators = []
    for indicator_type in DEMO_INDICATORS:
        parameters = indicator_spec(indicator_type).defaults
        name = f"{indicator_type} " + "/".join(f"{value:g}" for value in parameters.values())
        indicator, _ = IndicatorConfig.objects.get_or_create(
            owner=owner, name=name, defaults={"indicator_type": indicator_type, "parameters": parameters}
        )
        indicators.append(indicator)
    strategy = Strategy.objects.filter(owner=owner, name=DEMO_STRATEGY_NAME).first()
    if strategy is None:
        strategy = strategy_create(
            owner=owner,
            name=DEMO_STRATEGY_NAME,
            symbol=symbol,
            indicators=indicators,
            bar_size=BarSize.D1,
            schedule_cron=DEMO_SCHEDULE,
            market_data_source=MarketDataSource.PLAYBACK,
            broker_connection=broker,
            analyst=Analyst.RULES,
        )
    return strategy


def start_demo_strategy(*, command: BaseCommand, strategy: Strategy) -> None:
    """Schedule the demo strategy (its beat PeriodicTask, through the strategy service) and, the first time, run it
    once here on the playback feed, so the executions list and the dashboard start with a real run."""
    stdout = command.stdout
    if strategy.periodic_task_id is None:
        strategy_save(strategy=strategy)
    state = "scheduled" if strategy.is_active else "paused (resume it on its page or in the admin), schedule"
    stdout.write(f"Strategy {strategy.name!r}: {state} {strategy.schedule_cron} ({strategy.schedule_timezone}).")
    if strategy.executions.exists():
        stdout.write(f"Strategy {strategy.name!r} has run before; no new run now.")
        return
    stdout.write(f"Running {strategy.name!r} once on the playback feed:")
    run_and_print(command, strategy, trigger="manual")


class Command(BaseCommand):
    help = "Load the demo: daily bars for SPY, AAPL and GOOG, the demo user, and a demo strategy on SPY."

    def handle(self, *args, **options) -> None:
        for demo in DEMO_SYMBOLS:
            summary = import_demo_bars(demo=demo)
            self.stdout.write(
                f"Bars {summary.symbol} {summary.bar_size}: {summary.written} loaded, "
                f"{summary.first:%Y-%m-%d} to {summary.last:%Y-%m-%d}."
            )
            for bad in summary.skipped:
                self.stdout.write(f"    skipped {demo.file_name} {bad}")

        with transaction.atomic():
            user, password = ensure_demo_user()
            strategy = ensure_demo_strategy(owner=user, symbol=Symbol.objects.by_ticker("SPY").get())

        if password is not None:
            self.stdout.write(self.style.SUCCESS(f"Created the demo user. Sign in as {DEMO_USERNAME!r} with"))
            self.stdout.write(f"    password: {password}")
            self.stdout.write(
                "This password is shown once and not stored; "
                f"set another with `python manage.py changepassword {DEMO_USERNAME}`."
            )
        else:
            self.stdout.write(f"Demo user {DEMO_USERNAME!r} exists; its password is unchanged.")
        start_demo_strategy(command=self, strategy=strategy)

"""`manage.py run_strategy STRATEGY` runs one execution in the foreground and prints it."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from lineage.steps import STEPS
from orders.models import Order
from tests.pipeline.conftest import strategy_with_indicators
from trading.models import StrategyExecution

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command("run_strategy", *args, stdout=out)
    return out.getvalue()


def test_it_prints_the_execution_id_each_step_with_its_duration_the_signal_and_the_orders(owner):
    strategy = strategy_with_indicators(owner)

    output = run(str(strategy.pk))

    execution = StrategyExecution.objects.get(strategy=strategy)
    assert f"execution {execution.pk}" in output
    for number, name in enumerate(STEPS, start=1):
        assert re.search(rf"^\s+{number}\. {name}\s+\d+ ms  ok$", output, re.M), name
    assert re.search(r"^signal BUY  confidence [\d.]+  entry [\d.]+, stop [\d.]+, target [\d.]+$", output, re.M)
    order = Order.objects.get(strategy=strategy)
    assert f"order {order.client_order_id}  BUY 100 {strategy.symbol.symbol} LMT" in output
    assert output.rstrip().endswith("status COMPLETED")


def test_it_finds_the_strategy_by_name_and_dry_run_places_nothing(owner):
    strategy = strategy_with_indicators(owner, name="Trend follower")

    output = run("Trend follower", "--dry-run")

    assert "(dry run)" in output
    assert "orders none" in output
    assert not Order.objects.filter(strategy=strategy).exists()


def test_an_unknown_strategy_is_a_clear_error():
    with pytest.raises(CommandError, match="no strategy with id or name 'nope'"):
        run("nope")


def test_a_failed_run_prints_its_lineage_and_exits_non_zero(owner):
    strategy = strategy_with_indicators(owner, closes=False)

    with pytest.raises(CommandError, match="the run failed: fetch_market_data"):
        run(str(strategy.pk))


def test_a_paused_strategy_is_refused_with_a_clear_error_and_nothing_is_created(owner):
    # given a paused strategy
    strategy = strategy_with_indicators(owner, name="Trend follower", is_active=False)

    # when it is run from the command line, then the command fails (stderr, non-zero exit) saying so
    with pytest.raises(CommandError, match="^Trend follower is paused: resume it first$"):
        run(str(strategy.pk))
    assert not StrategyExecution.objects.filter(strategy=strategy).exists()

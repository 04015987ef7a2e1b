"""The strategy run end to end on real parts: stored bars, real indicators and charts, the rules analyst, the
simulated broker, PostgreSQL. Each step is recorded in lineage; a resumed run reads recorded steps back."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core import mail
from django.core.files.storage import default_storage

from lineage.models import LineageRecord, LineageStatus
from lineage.steps import STEPS
from market.models import MarketDataSource, PlaybackCursor
from notifications.models import Notification
from orders.models import Order, OrderLeg, OrderSide, TimeInForce
from orders.statuses import OrderStatus
from portfolio.models import Position
from signals_app.models import SignalAction, TradingSignal
from tests.factories import OrderFactory, PositionFactory
from tests.pipeline.conftest import bars_create, downtrend, strategy_with_indicators
from trading.executor import execute
from trading.models import ExecutionStatus, SkipReason, StrategyExecution
from trading.services import execution_start

pytestmark = pytest.mark.django_db


def run_once(strategy, **start):
    execution = execution_start(strategy=strategy, trigger="manual", **start)
    outcome = execute(execution.pk)
    execution.refresh_from_db()
    return execution, outcome


def steps_of(execution) -> list[tuple[str, str]]:
    return list(LineageRecord.objects.for_execution(execution.pk).values_list("step_name", "status"))


def test_a_buy_run_records_nine_steps_and_places_one_day_limit_entry(buying_strategy):
    execution, outcome = run_once(buying_strategy)

    assert execution.status == ExecutionStatus.COMPLETED
    assert steps_of(execution) == [(name, LineageStatus.SUCCESS) for name in STEPS]
    signal = TradingSignal.objects.get(execution=execution)
    assert signal.action == SignalAction.BUY
    order = Order.objects.get(signal=signal)
    assert (order.side, order.leg, order.order_type, order.time_in_force) == ("BUY", "entry", "LMT", "DAY")
    assert order.limit_price == signal.entry_price
    assert order.status == OrderStatus.SUBMITTED
    assert outcome.order_ids == [order.pk]


def test_the_lineage_keeps_what_a_person_needs_to_judge_the_run(buying_strategy):
    execution, _ = run_once(buying_strategy)
    record = {r.step_name: r for r in LineageRecord.objects.for_execution(execution.pk)}

    chart_keys = record["generate_charts"].output_data["chart_keys"]
    assert chart_keys and all(default_storage.exists(key) for key in chart_keys)
    assert record["llm_analysis"].output_data["fields"]["action"] == "BUY"
    sizing = record["risk_check"].output_data["sizing"]
    # equity 100000 x 1% = 1000 at risk; entry 100 - stop 97 = 3 a share -> 333; capped by 10000 / 100 = 100
    assert (sizing["by_risk"], sizing["by_max_position_value"], sizing["risk_amount"]) == (333, 100, "1000.00")
    assert record["risk_check"].output_data["quantity"] == "100"
    assert record["place_order"].output_data["payload"][0]
    assert all(r.duration_ms >= 0 for r in record.values())
    assert record["generate_charts"].duration_ms > 0


def test_a_resumed_run_reads_recorded_steps_back_and_makes_no_second_signal_or_order(buying_strategy):
    execution, first = run_once(buying_strategy)
    # A worker dies after the order went out but before place_order and the completion were recorded.
    LineageRecord.objects.filter(execution=execution, step_name__in=["place_order", "execution_complete"]).delete()
    StrategyExecution.objects.filter(pk=execution.pk).update(status=ExecutionStatus.RUNNING, finished_at=None)
    analysis_before = LineageRecord.objects.get(execution=execution, step_name="llm_analysis").recorded_at

    again = execute(execution.pk)

    assert again.status == ExecutionStatus.COMPLETED
    assert TradingSignal.objects.filter(execution=execution).count() == 1
    assert Order.objects.filter(strategy=buying_strategy).count() == 1
    assert again.order_ids == first.order_ids
    assert LineageRecord.objects.get(execution=execution, step_name="llm_analysis").recorded_at == analysis_before


def test_a_split_pipeline_hands_off_between_queues_and_each_hop_reads_the_earlier_steps_back(settings, buying_strategy):
    settings.PIPELINE_SPLIT_QUEUES = True
    execution = execution_start(strategy=buying_strategy, trigger="manual")

    hops = [execute(execution.pk).handoff_queue]
    while hops[-1]:
        hops.append(execute(execution.pk, queue=hops[-1]).handoff_queue)

    execution.refresh_from_db()
    assert hops == ["charts", "analysis", "orders", None]  # the first call, on no queue, hands off straight away
    assert execution.status == ExecutionStatus.COMPLETED
    assert [name for name, _ in steps_of(execution)] == list(STEPS)
    assert Order.objects.filter(strategy=buying_strategy).count() == 1


def test_a_finished_execution_is_not_run_again(buying_strategy):
    execution, first = run_once(buying_strategy)

    again = execute(execution.pk)

    assert (again.status, again.order_ids) == (ExecutionStatus.COMPLETED, first.order_ids)
    assert LineageRecord.objects.filter(execution=execution).count() == len(STEPS)


def test_an_inactive_strategy_is_a_recorded_skip(buying_strategy):
    buying_strategy.is_active = False
    buying_strategy.save()

    execution, outcome = run_once(buying_strategy)

    assert (execution.status, execution.skip_reason) == (ExecutionStatus.SKIPPED, SkipReason.INACTIVE)
    assert execution.error == "strategy inactive"
    assert steps_of(execution) == [("load_strategy", "skipped"), ("execution_complete", "skipped")]


def test_exhausted_playback_data_is_a_recorded_skip(owner):
    strategy = strategy_with_indicators(owner, market_data_source=MarketDataSource.PLAYBACK)
    last = strategy.symbol.bars.order_by("-timestamp").first().timestamp
    PlaybackCursor.objects.create(strategy=strategy, bar_size=strategy.bar_size, cursor=last)  # nothing follows

    execution, _ = run_once(strategy)

    assert (execution.status, execution.skip_reason) == (ExecutionStatus.SKIPPED, SkipReason.PLAYBACK_EXHAUSTED)
    assert "playback data exhausted" in execution.error
    assert ("fetch_market_data", "skipped") in steps_of(execution)


def test_a_failing_step_records_its_error_and_closes_the_lineage_and_notifies(settings, owner):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    strategy = strategy_with_indicators(owner, closes=False)  # no bars at all

    execution, outcome = run_once(strategy)

    assert execution.status == ExecutionStatus.FAILED
    assert "fetch_market_data" in execution.error
    records = dict(steps_of(execution))
    assert records["fetch_market_data"] == LineageStatus.ERROR
    assert records["execution_error"] == LineageStatus.ERROR
    assert "generate_charts" not in records
    assert not TradingSignal.objects.filter(execution=execution).exists()
    notification = Notification.objects.get(execution=execution)
    assert (notification.kind, notification.owner) == ("run_failed", owner)
    assert [d.destination for d in notification.deliveries.all()] == [f"mail to {owner.email}"]
    notify = LineageRecord.objects.get(execution=execution, step_name="notify")
    assert notify.output_data == {"notification_id": notification.pk, "kind": "run_failed", "deliveries_queued": 1}


def test_the_global_kill_switch_blocks_the_entry_and_the_refusal_is_in_the_lineage(settings, buying_strategy):
    settings.TRADING_KILL_SWITCH = True

    execution, outcome = run_once(buying_strategy)

    assert execution.status == ExecutionStatus.COMPLETED
    assert outcome.order_ids == []
    risk = LineageRecord.objects.get(execution=execution, step_name="risk_check")
    assert risk.status == LineageStatus.SKIPPED
    assert any("global_kill_switch" in refusal for refusal in risk.output_data["refusals"])
    assert "no order" in LineageRecord.objects.get(execution=execution, step_name="place_order").output_data["note"]
    assert not Order.objects.exists()


def test_a_bracket_strategy_places_the_entry_with_gtc_stop_and_target(buying_strategy):
    buying_strategy.use_bracket_orders = True
    buying_strategy.save()

    execution, outcome = run_once(buying_strategy)

    orders = {o.leg: o for o in Order.objects.filter(strategy=buying_strategy)}
    assert set(orders) == {OrderLeg.ENTRY, OrderLeg.STOP, OrderLeg.TARGET}
    assert orders[OrderLeg.ENTRY].time_in_force == TimeInForce.DAY
    assert orders[OrderLeg.STOP].time_in_force == orders[OrderLeg.TARGET].time_in_force == TimeInForce.GTC
    signal = TradingSignal.objects.get(execution=execution)
    assert (orders[OrderLeg.STOP].stop_price, orders[OrderLeg.TARGET].limit_price) == (
        signal.stop_loss,
        signal.take_profit,
    )
    assert sorted(outcome.order_ids) == sorted(o.pk for o in orders.values())


def test_a_sell_closes_the_open_position_with_a_day_limit_at_the_exit_price(owner):
    strategy = strategy_with_indicators(owner, closes=downtrend())
    PositionFactory(owner=owner, strategy=strategy, symbol=strategy.symbol, quantity=Decimal(40))

    execution, outcome = run_once(strategy)

    signal = TradingSignal.objects.get(execution=execution)
    assert signal.action == SignalAction.SELL
    order = Order.objects.get(pk__in=outcome.order_ids)
    assert (order.side, order.leg, order.quantity, order.time_in_force) == (OrderSide.SELL, "exit", 40, "DAY")
    assert order.limit_price == signal.entry_price
    assert order.position == Position.objects.get(strategy=strategy)


def test_a_dry_run_analyses_and_places_nothing(buying_strategy):
    execution, outcome = run_once(buying_strategy, dry_run=True)

    assert execution.status == ExecutionStatus.COMPLETED
    assert TradingSignal.objects.filter(execution=execution, action="BUY").exists()
    assert not Order.objects.exists()
    note = LineageRecord.objects.get(execution=execution, step_name="place_order").output_data["note"]
    assert note == "dry run: nothing placed"
    risk = LineageRecord.objects.get(execution=execution, step_name="risk_check").output_data
    assert risk["sizing"]["quantity"] == 100  # sized as it would have been


def test_bars_are_read_by_the_market_clock_not_beyond_it(owner):
    strategy = strategy_with_indicators(owner)
    next_week = dt.datetime.combine(dt.datetime.now(dt.UTC).date() + dt.timedelta(days=7), dt.time(0), tzinfo=dt.UTC)
    bars_create(strategy.symbol, closes=[500.0], end=next_week)  # a bar from the future must not be analysed

    execution, _ = run_once(strategy)

    fetched = LineageRecord.objects.get(execution=execution, step_name="fetch_market_data").output_data
    assert dt.datetime.fromisoformat(fetched["series"]["1d"]["end"]) < next_week
    assert Decimal(fetched["series"]["1d"]["last_close"]) == Decimal("100")


def test_a_sell_while_an_exit_is_working_records_the_refusal_and_places_and_notifies_nothing(
    owner, django_capture_on_commit_callbacks
):
    # given a position whose exit from an earlier run is still working
    strategy = strategy_with_indicators(owner, closes=downtrend())
    position = PositionFactory(owner=owner, strategy=strategy, symbol=strategy.symbol, quantity=Decimal(40))
    working = OrderFactory(
        owner=owner,
        strategy=strategy,
        broker_connection=strategy.broker_connection,
        symbol=strategy.symbol,
        position=position,
        side=OrderSide.SELL,
        leg=OrderLeg.EXIT,
        quantity=Decimal(40),
        status=OrderStatus.SUBMITTED,
    )
    orders_before = Order.objects.count()

    # when the next run reads SELL again
    with django_capture_on_commit_callbacks(execute=True):
        execution, outcome = run_once(strategy)

    # then the risk gate refuses it in the lineage, and no order or notification is made
    assert TradingSignal.objects.get(execution=execution).action == SignalAction.SELL
    risk = LineageRecord.objects.get(execution=execution, step_name="risk_check")
    assert risk.output_data["refusals"] == [f"exit already working: order {working.client_order_id}"]
    assert outcome.order_ids == []
    assert Order.objects.count() == orders_before
    assert not Notification.objects.exists()
    assert not mail.outbox

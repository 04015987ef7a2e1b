"""`manage.py run_strategy STRATEGY [--dry-run]`: one execution now, in the foreground, printed step by step."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from lineage.models import LineageStatus
from orders.models import Order
from signals_app.models import TradingSignal
from trading.cli import resolve_strategy
from trading.executor import execute
from trading.models import ExecutionStatus
from trading.services import AlreadyRunning, StrategyPaused, execution_start, strategy_runnable_check


class Command(BaseCommand):
    help = "Run one execution of a strategy now and print its execution id, each step, the signal and the orders."

    def add_arguments(self, parser) -> None:
        parser.add_argument("strategy", help="the strategy's id or exact name")
        parser.add_argument("--dry-run", action="store_true", help="analyse only: place no orders")

    def handle(self, *args, strategy: str, dry_run: bool, **options) -> None:
        target = resolve_strategy(strategy)
        try:
            strategy_runnable_check(strategy=target)
        except StrategyPaused as exc:
            raise CommandError(str(exc)) from exc
        outcome = run_and_print(self, target, dry_run=dry_run)
        if outcome.status == ExecutionStatus.FAILED:
            raise CommandError(f"the run failed: {outcome.error}")


def run_and_print(command: BaseCommand, strategy, *, dry_run: bool = False, trigger: str = "command"):
    """Start an execution of `strategy`, run it here, and print it. Shared with seed_demo."""
    out, style = command.stdout, command.style
    try:
        execution = execution_start(strategy=strategy, trigger=trigger, dry_run=dry_run)
    except AlreadyRunning as exc:
        raise CommandError(str(exc)) from exc
    out.write(f"execution {execution.pk}  strategy {strategy.pk} {strategy.name}{'  (dry run)' if dry_run else ''}")

    def on_step(record, read_back: bool) -> None:
        mark = {LineageStatus.SUCCESS: "ok", LineageStatus.SKIPPED: "skipped", LineageStatus.ERROR: "ERROR"}
        status = mark.get(record.status, record.status)
        line = f"  {record.step_number:>2}. {record.step_name:<22} {record.duration_ms:>7} ms  {status}"
        if record.error:
            line += f"  {record.error}"
        elif record.status == LineageStatus.SKIPPED and record.output_data.get("refusals"):
            line += "  " + "; ".join(record.output_data["refusals"])
        out.write(style.ERROR(line) if record.status == LineageStatus.ERROR else line)

    outcome = execute(execution.pk, on_step=on_step)
    signal = TradingSignal.objects.filter(pk=outcome.signal_id).first() if outcome.signal_id else None
    if signal is not None:
        levels = (("entry", signal.entry_price), ("stop", signal.stop_loss), ("target", signal.take_profit))
        prices = ", ".join(f"{name} {_plain(value)}" for name, value in levels if value is not None)
        out.write(f"signal {signal.action}  confidence {signal.confidence}{'  ' + prices if prices else ''}")
        if signal.refusal_reason:
            out.write(f"  ({signal.refusal_reason})")
    orders = list(Order.objects.filter(pk__in=outcome.order_ids).select_related("symbol").order_by("pk"))
    if orders:
        for order in orders:
            price = _plain(order.limit_price or order.stop_price)
            out.write(
                f"order {order.client_order_id}  {order.side} {_plain(order.quantity)} {order.symbol.symbol} "
                f"{order.order_type} {price} {order.time_in_force}  {order.status}"
                + (f"  ({order.status_reason})" if order.status_reason else "")
            )
    elif outcome.status == ExecutionStatus.COMPLETED:
        out.write("orders none")
    out.write(f"status {outcome.status}" + (f"  {outcome.error}" if outcome.error else ""))
    return outcome


def _plain(value) -> str:
    """A Decimal without trailing zeros or an exponent: 100.000000 -> 100, 97.500000 -> 97.5."""
    return "" if value is None else format(value.normalize(), "f")

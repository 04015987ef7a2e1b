"""python manage.py analyse STRATEGY [--analyst anthropic|openai|rules] [--model M] [--llm-cache use|only|off]

A dry run of the strategy through the executor's own steps (trading.executor), with the analyst, model and LLM
cache mode given here: every step is recorded in lineage, nothing is placed. Prints each step, the signal (or HOLD
with the reason), the tokens and the cost.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from lineage.models import LineageRecord, LineageStatus
from signals_app.models import Analyst, LLMCall, TradingSignal
from trading.analysis import CACHE_MODES
from trading.environment import LiveEnvironment
from trading.executor import execute
from trading.models import ExecutionStatus, Strategy, StrategyExecution
from trading.services import AlreadyRunning, execution_start


class Command(BaseCommand):
    help = "Analyse a strategy now as a dry run: lineage is recorded, nothing is placed."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("strategy", help="strategy id, or its name (owner/name when several owners use it)")
        parser.add_argument("--analyst", choices=Analyst.values, help="default: the strategy's analyst")
        parser.add_argument("--model", help="model id (default: the strategy's model, else LLM_MODEL/OPENAI_MODEL)")
        parser.add_argument("--llm-cache", choices=CACHE_MODES, default="use", dest="llm_cache")

    def handle(self, *args: Any, **options: Any) -> None:
        strategy = find_strategy(options["strategy"])
        try:
            execution = execution_start(strategy=strategy, trigger="command", dry_run=True)
        except AlreadyRunning as exc:
            raise CommandError(str(exc)) from exc
        # In this process, start to end: a dry run never hands off to the split queues.
        env = LiveEnvironment(
            analyst=options["analyst"], model=options["model"], llm_cache=options["llm_cache"], splits_queues=False
        )
        outcome = execute(execution.pk, env=env, on_step=self.print_step)
        if outcome.status == ExecutionStatus.FAILED:
            raise CommandError(f"{outcome.error} (dry-run execution {execution.pk})")
        if outcome.status == ExecutionStatus.SKIPPED:
            raise CommandError(f"skipped: {outcome.error} (dry-run execution {execution.pk})")
        self.report(strategy, execution, TradingSignal.objects.get(execution=execution))

    def print_step(self, record: LineageRecord, read_back: bool) -> None:
        line = f"  {record.step_number:>2}. {record.step_name:<22} {record.duration_ms:>7} ms  {record.status}"
        line += f"  {record.error}" if record.error else ""
        self.stdout.write(self.style.ERROR(line) if record.status == LineageStatus.ERROR else line)

    def report(self, strategy: Strategy, execution: StrategyExecution, signal: TradingSignal) -> None:
        out = self.stdout.write
        analysis = LineageRecord.objects.get(execution=execution, step_name="llm_analysis").output_data
        who = f"{analysis['analyst']} {analysis['model']}"
        out(f"{strategy.symbol.symbol} {strategy.bar_size} · {strategy.name} · {who}")
        if signal.refusal_reason:
            out(f"Signal: HOLD (refused: {signal.refusal_reason})")
        elif signal.action == "HOLD":
            out(f"Signal: HOLD  confidence {signal.confidence}")
        else:
            levels = [
                f"{label} {value}"
                for label, value in (("stop", signal.stop_loss), ("target", signal.take_profit))
                if value is not None
            ]
            price = "exit" if signal.action == "SELL" else "entry"
            out(
                f"Signal: {signal.action}  {price} {signal.entry_price}  {'  '.join(levels)}  "
                f"confidence {signal.confidence}"
            )
        if signal.reasoning:
            out(f"Reasoning: {signal.reasoning}")
        call = LLMCall.objects.filter(pk=analysis.get("llm_call_id")).first() if analysis.get("llm_call_id") else None
        if call is not None and call.from_cache:
            out("Tokens: none (answered from the LLM cache)")
        elif call is not None:
            out(
                f"Tokens: input {call.input_tokens}, cache read {call.cache_read_input_tokens}, "
                f"cache write {call.cache_creation_input_tokens}, output {call.output_tokens}"
            )
        else:
            out("Tokens: none (offline rules)")
        cost = analysis.get("cost_usd")
        out(f"Cost: {'unknown (no price for this model in LLM_PRICES)' if cost is None else f'${Decimal(cost):.6f}'}")
        out(f"Dry run: nothing placed. Lineage: execution {execution.pk}")


def find_strategy(text: str) -> Strategy:
    strategies = Strategy.objects.select_related("symbol", "owner")
    if text.isdigit():
        found = strategies.filter(pk=int(text)).first()
        if found is None:
            raise CommandError(f"no strategy with id {text}")
        return found
    owner, _, name = text.rpartition("/")
    matches = list(strategies.filter(name=name, **({"owner__username": owner} if owner else {})))
    if not matches:
        raise CommandError(f"no strategy named {text!r}")
    if len(matches) > 1:
        names = ", ".join(f"{s.owner.username}/{s.name} (id {s.pk})" for s in matches)
        raise CommandError(f"{text!r} names several strategies: {names}; give the id or owner/name")
    return matches[0]

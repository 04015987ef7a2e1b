"""python manage.py analyse STRATEGY [--analyst anthropic|openai|rules] [--model M] [--llm-cache use|only|off]

Runs the analysis steps of a strategy run, exactly as the executor does (load the strategy, fetch bars, compute the
indicators, draw the charts, ask the analyst, parse and validate the signal), records each step in lineage under a
dry-run execution, places nothing, and prints the signal (or HOLD with the reason), the tokens and the cost.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from lineage.models import LineageStatus
from lineage.services import lineage_record
from lineage.steps import ANALYSIS_STEPS
from market.clock import clock_for_strategy
from signals_app.llm import LLMError
from signals_app.models import Analyst
from signals_app.parsing import ParsedSignal
from trading import analysis as steps
from trading.analysis import CACHE_MODES
from trading.models import ExecutionStatus, Strategy, StrategyExecution

STEP_NAMES = ANALYSIS_STEPS


class StepFailed(Exception):
    pass


class Command(BaseCommand):
    help = "Analyse a strategy now as a dry run: lineage is recorded, nothing is placed."

    def add_arguments(self, parser) -> None:
        parser.add_argument("strategy", help="strategy id, or its name (owner/name when several owners use it)")
        parser.add_argument("--analyst", choices=Analyst.values, help="default: the strategy's analyst")
        parser.add_argument("--model", help="model id (default: the strategy's model, else LLM_MODEL/OPENAI_MODEL)")
        parser.add_argument("--llm-cache", choices=CACHE_MODES, default="use", dest="llm_cache")

    def handle(self, *args, **options) -> None:
        strategy = find_strategy(options["strategy"])
        execution = StrategyExecution.objects.create(
            strategy=strategy, dry_run=True, trigger="command", started_at=timezone.now()
        )
        self.execution = execution
        try:
            parsed, analysis = self.run_steps(strategy, execution, options)
        except StepFailed as exc:
            StrategyExecution.objects.filter(pk=execution.pk).update(
                status=ExecutionStatus.FAILED, finished_at=timezone.now(), error=str(exc)
            )
            raise CommandError(f"{exc} (dry-run execution {execution.pk})") from None
        StrategyExecution.objects.filter(pk=execution.pk).update(
            status=ExecutionStatus.COMPLETED, finished_at=timezone.now()
        )
        self.report(strategy, execution, parsed, analysis)

    def run_steps(self, strategy, execution, options) -> tuple[ParsedSignal, steps.Analysis]:
        analyst = options["analyst"] or strategy.analyst
        with self.step(1, "load_strategy", {"strategy_id": strategy.pk}) as out:
            clock = clock_for_strategy(strategy)
            out.update(
                name=strategy.name,
                symbol=strategy.symbol.symbol,
                bar_size=strategy.bar_size,
                analyst=analyst,
                model=options["model"] or strategy.llm_model or "",
                market_data_source=strategy.market_data_source,
                now=clock.now(),
            )
        with self.step(2, "fetch_market_data", {"symbol": strategy.symbol.symbol, "end": clock.now()}) as out:
            bars = steps.fetch_bars(strategy=strategy, clock=clock)
            if bars.empty:
                raise StepFailed(
                    f"no {strategy.bar_size} bars for {strategy.symbol.symbol} up to {clock.now():%Y-%m-%d %H:%M}"
                )
            out.update(
                bars=len(bars), first=bars.index[0], last=bars.index[-1], last_close=float(bars["close"].iloc[-1])
            )
        with self.step(3, "calculate_indicators", {"bars": len(bars)}) as out:
            indicators = steps.calculate_indicators(strategy=strategy, bars_df=bars)
            out["latest"] = {name: frame.iloc[-1].to_dict() for name, frame in indicators.items()}
        with self.step(4, "generate_charts", {"bars": strategy.lookback_bars}) as out:
            charts = steps.generate_charts(
                strategy=strategy,
                bars_df=bars,
                indicators=indicators,
                key_prefix=f"charts/{strategy.pk}/{execution.pk}",
            )
            out["charts"] = charts
        context = steps.build_context(
            strategy=strategy, bars_df=bars, indicators=indicators, charts=charts, clock=clock
        )
        llm_input = {"analyst": analyst, "model": options["model"], "llm_cache": options["llm_cache"]}
        with self.step(5, "llm_analysis", llm_input) as out:
            analysis = steps.analyse(
                strategy=strategy,
                context=context,
                charts=charts,
                analyst=analyst,
                model=options["model"],
                llm_cache=options["llm_cache"],
                execution=execution,
            )
            out.update(analysis_summary(analysis))
        with self.step(6, "parse_signal", {"last_close": context["last_close"]}) as out:
            parsed = steps.parse_signal(analysis=analysis, last_close=context["last_close"], strategy=strategy)
            out.update(parsed.as_dict())
        return parsed, analysis

    @contextmanager
    def step(self, number: int, name: str, input_data: dict):
        """Run one step and record it in lineage, whether it worked or not."""
        output: dict = {}
        started = time.monotonic()
        try:
            yield output
        except Exception as exc:
            message = f"{name} failed: {exc}" if not isinstance(exc, StepFailed) else str(exc)
            lineage_record(
                execution=self.execution,
                step_name=name,
                step_number=number,
                input_data=input_data,
                output_data=output,
                status=LineageStatus.ERROR,
                error=message,
                duration_ms=int((time.monotonic() - started) * 1000),
            )
            if isinstance(exc, StepFailed | LLMError) or not isinstance(exc, Exception):
                raise StepFailed(message) from exc
            raise StepFailed(f"{message} ({type(exc).__name__})") from exc
        lineage_record(
            execution=self.execution,
            step_name=name,
            step_number=number,
            input_data=input_data,
            output_data=output,
            duration_ms=int((time.monotonic() - started) * 1000),
        )

    def report(self, strategy, execution, parsed: ParsedSignal, analysis) -> None:
        out = self.stdout.write
        model = analysis.resolved_model
        out(f"{strategy.symbol.symbol} {strategy.bar_size} · {strategy.name} · {analysis.analyst} {model}")
        if parsed.refusal_reason:
            out(f"Signal: HOLD (refused: {parsed.refusal_reason})")
        elif parsed.action == "HOLD":
            out(f"Signal: HOLD  confidence {parsed.confidence}")
        else:
            levels = [
                f"{label} {value}" for label, value in (("stop", parsed.stop_loss), ("target", parsed.target)) if value
            ]
            price = "exit" if parsed.action == "SELL" else "entry"
            out(f"Signal: {parsed.action}  {price} {parsed.entry}  {'  '.join(levels)}  confidence {parsed.confidence}")
        if parsed.reasoning:
            out(f"Reasoning: {parsed.reasoning}")
        usage = analysis.usage
        if analysis.from_cache:
            out("Tokens: none (answered from the LLM cache)")
        elif usage:
            out(
                f"Tokens: input {usage.get('input_tokens', 0)}, cache read {usage.get('cache_read_input_tokens', 0)}, "
                f"cache write {usage.get('cache_creation_input_tokens', 0)}, output {usage.get('output_tokens', 0)}"
            )
        else:
            out("Tokens: none (offline rules)")
        cost = (
            "unknown (no price for this model in LLM_PRICES)"
            if analysis.cost_usd is None
            else f"${analysis.cost_usd:.6f}"
        )
        out(f"Cost: {cost}")
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


def analysis_summary(analysis) -> dict:
    call = analysis.llm_call
    return {
        "analyst": analysis.analyst,
        "model": analysis.resolved_model,
        "prompt_version": analysis.prompt_version.pk if analysis.prompt_version else None,
        "prompt": analysis.rendered_prompt,
        "llm_call_id": call.pk if call else None,
        "from_cache": analysis.from_cache,
        "stop_reason": analysis.answer.stop_reason,
        "usage": analysis.usage,
        "cost_usd": analysis.cost_usd,
        "answer": analysis.answer.fields if analysis.answer.fields is not None else analysis.answer.text,
    }

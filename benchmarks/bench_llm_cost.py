"""Tokens and dollars per analysis, from a request built exactly as a run builds it.

A strategy with the five usual indicators and 200 daily bars is created inside a transaction that is rolled back;
the chart is drawn by market.charts at its real size; the prompts are the built-in defaults rendered on the real
context; the body is what signals_app.llm.anthropic sends. Nothing is sent anywhere.

Image tokens: the larger of width*height/750 and the 28-px visual-token count, each chart at most 1,600.
Text tokens: no tokenizer is available offline, so characters / CHARS_PER_TOKEN (3.0: numeric tables tokenise worse
than prose; check with messages.count_tokens on the real model). Output: a typical answer at effort "low" (JSON plus
some thinking) and the max_tokens cap as the worst case.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sys
from decimal import Decimal
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import transaction  # noqa: E402

from market.charts import render_chart  # noqa: E402
from market.clock import FixedClock  # noqa: E402
from market.models import Bar, BarSize, IndicatorConfig, Symbol  # noqa: E402
from market.sources import StoredBarSource  # noqa: E402
from signals_app.llm import AnalysisRequest, price_for  # noqa: E402
from signals_app.llm.anthropic import AnthropicAnalyst  # noqa: E402
from signals_app.models import PromptType  # noqa: E402
from signals_app.parsing import SIGNAL_SCHEMA  # noqa: E402
from signals_app.prompts import render_prompt, resolve_prompt_version  # noqa: E402
from trading import analysis as steps  # noqa: E402
from trading.models import Strategy, StrategyIndicator  # noqa: E402

CHARS_PER_TOKEN = 3.0
TYPICAL_OUTPUT_TOKENS = 700  # ~150 for the JSON answer, the rest adaptive thinking at effort "low"
MAX_IMAGE_TOKENS = 1600
RUNS_PER_DAY = 32  # the default schedule: every 15 minutes, 09:00-16:59, on weekdays
TRADING_DAYS_PER_MONTH = 21
MIN_CACHEABLE_PREFIX = 1024  # Sonnet 5's minimum; the 5.5 family's is not published (measure it)
INDICATORS = [
    ("Supertrend 10/3", "SUPERTREND", {"period": 10, "multiplier": 3}),
    ("EMA 20", "EMA", {"period": 20}),
    ("RSI 14", "RSI", {"period": 14}),
    ("MACD 12/26/9", "MACD", {"fast": 12, "slow": 26, "signal": 9}),
    ("ATR 14", "ATR", {"period": 14}),
]

INDICATOR_PAIRS = [(kind, params) for _, kind, params in INDICATORS]


class Rollback(Exception):
    pass


def image_tokens(width: int, height: int) -> int:
    return max(math.ceil(width * height / 750), math.ceil(width / 28) * math.ceil(height / 28))


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def build_request(weekly: bool) -> tuple[AnalysisRequest, dict]:
    user = get_user_model().objects.create_user("bench-llm-cost")
    symbol = Symbol.objects.create(symbol="BENCH", name="Benchmark Corp", exchange="NASDAQ")
    start = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    price = 100.0
    bars = []
    for n in range(200):
        close = price * (1 + (0.004 if n % 5 else -0.009))
        bars.append(
            Bar(
                symbol=symbol,
                bar_size=BarSize.D1,
                timestamp=start + dt.timedelta(days=n),
                open=Decimal(f"{price:.2f}"),
                high=Decimal(f"{max(price, close) * 1.006:.2f}"),
                low=Decimal(f"{min(price, close) * 0.994:.2f}"),
                close=Decimal(f"{close:.2f}"),
                volume=Decimal(2_000_000 + n * 1000),
            )
        )
        price = close
    Bar.objects.bulk_create(bars)
    strategy = Strategy.objects.create(owner=user, name="bench", symbol=symbol, weekly_chart=weekly)
    for position, (name, kind, params) in enumerate(INDICATORS):
        config = IndicatorConfig.objects.create(owner=user, name=name, indicator_type=kind, parameters=params)
        StrategyIndicator.objects.create(strategy=strategy, indicator=config, position=position)

    clock = FixedClock(bars[-1].timestamp + dt.timedelta(hours=21))
    frame = steps.fetch_bars(strategy=strategy, clock=clock)
    indicators = steps.calculate_indicators(strategy=strategy, bars_df=frame)
    pngs = [render_chart(frame, symbol="BENCH", bar_size="1d", indicators=indicators, bars=strategy.lookback_bars)]
    if weekly:
        weekly_frame = StoredBarSource().bars(symbol, "1w", end=clock.now(), limit=60)
        pngs.append(render_chart(weekly_frame, symbol="BENCH", bar_size="1w", indicators=INDICATOR_PAIRS, bars=60))
    charts = []
    for index, png in enumerate(pngs):
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        charts.append({"key": f"bench/{index}.png", "data": png, "width": width, "height": height, "title": "BENCH"})
    context = steps.build_context(strategy=strategy, bars_df=frame, indicators=indicators, charts=charts, clock=clock)
    request = AnalysisRequest(
        model=settings.LLM_MODEL,
        system=render_prompt(resolve_prompt_version(strategy, PromptType.SYSTEM), context),
        prompt=render_prompt(resolve_prompt_version(strategy, PromptType.ANALYSIS), context),
        images=[steps.load_chart(chart) for chart in charts],
        schema=SIGNAL_SCHEMA,
        max_tokens=settings.LLM_MAX_TOKENS,
        effort=settings.LLM_EFFORT,
    )
    return request, context


def measure(request: AnalysisRequest) -> dict:
    body = AnthropicAnalyst().build_body(request)
    images = [(image.width, image.height, image_tokens(image.width, image.height)) for image in request.images]
    for width, height, tokens in images:
        assert tokens <= MAX_IMAGE_TOKENS, f"chart {width}x{height} costs {tokens} image tokens (> {MAX_IMAGE_TOKENS})"
    schema_tokens = text_tokens(json.dumps(body.get("output_config", {}).get("format", {})))
    system_tokens = text_tokens(request.system) + schema_tokens
    prompt_tokens = text_tokens(request.prompt)
    image_total = sum(tokens for _, _, tokens in images)
    return {
        "model": request.model,
        "images": images,
        "image_bytes": [len(image.data) for image in request.images],
        "request_bytes_base64": len(json.dumps(body)),
        "system_tokens": system_tokens,
        "prompt_tokens": prompt_tokens,
        "image_tokens": image_total,
        "input_tokens": system_tokens + prompt_tokens + image_total,
    }


def dollars(sizes: dict, output_tokens: int, *, cached: bool) -> Decimal:
    price = price_for(sizes["model"])
    if price is None:
        raise SystemExit(f"no price for {sizes['model']} in LLM_PRICES")
    uncached = sizes["prompt_tokens"] + sizes["image_tokens"]
    system = sizes["system_tokens"]
    system_cost = system * (price["cache_read"] if cached else price["input"])
    total = uncached * price["input"] + system_cost + output_tokens * price["output"]
    return (total / Decimal(1_000_000)).quantize(Decimal("0.000001"))


def main() -> None:
    results = {}
    for weekly in (False, True):
        try:
            with transaction.atomic():
                request, _ = build_request(weekly)
                results["daily + weekly charts" if weekly else "daily chart"] = measure(request)
                raise Rollback
        except Rollback:
            pass

    price = price_for(settings.LLM_MODEL)
    print(f"model {settings.LLM_MODEL}  (USD/MTok: {json.dumps({k: str(v) for k, v in price.items()})})")
    print(f"text tokens estimated at {CHARS_PER_TOKEN} characters/token; max_tokens {settings.LLM_MAX_TOKENS}")
    report = {}
    for name, sizes in results.items():
        charts = ", ".join(f"{w}x{h}={t} tok" for w, h, t in sizes["images"])
        print(f"\n{name}: charts {charts}; request body {sizes['request_bytes_base64'] / 1024:.0f} KiB")
        print(
            f"  input ≈ {sizes['input_tokens']} tokens = system+schema {sizes['system_tokens']} (cacheable) "
            f"+ prompt {sizes['prompt_tokens']} + images {sizes['image_tokens']}"
        )
        if sizes["system_tokens"] < MIN_CACHEABLE_PREFIX:
            print(f"  note: the cacheable prefix is under {MIN_CACHEABLE_PREFIX} tokens; caching may do nothing")
        rows = {}
        for label, output in (("typical", TYPICAL_OUTPUT_TOKENS), ("worst case", settings.LLM_MAX_TOKENS)):
            plain = dollars(sizes, output, cached=False)
            cached = dollars(sizes, output, cached=True)
            rows[label] = {"output_tokens": output, "usd_no_cache": str(plain), "usd_cache_read": str(cached)}
            print(
                f"  {label:<10} output {output:>5} tok: ${plain:.4f} per run without cache reads, "
                f"${cached:.4f} with the system prompt read from cache"
            )
        typical = Decimal(rows["typical"]["usd_cache_read"])
        monthly = typical * RUNS_PER_DAY * TRADING_DAYS_PER_MONTH
        print(
            f"  default schedule ({RUNS_PER_DAY} runs/day, {TRADING_DAYS_PER_MONTH} days): "
            f"≈ ${typical * RUNS_PER_DAY:.2f}/day, ${monthly:.2f}/month per strategy (typical, cached)"
        )
        report[name] = {**sizes, "per_run": rows}
    out = Path(__file__).resolve().parent / "output"
    out.mkdir(exist_ok=True)
    (out / "llm_cost.json").write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()

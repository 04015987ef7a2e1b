"""A real browser (Debian's Chromium through Playwright) drives the pages end to end: sign in, create a strategy
through the five-step flow, run it on a real Celery worker, watch its lineage fill in, open a step's detail.

Screenshots are kept under test-output/ (gitignored) for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from decimal import Decimal
from pathlib import Path

import pytest

from tests.factories import BarFactory, BrokerConnectionFactory, IndicatorConfigFactory, SymbolFactory, UserFactory

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "browser"
PASSWORD = "browser-pass-1234"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (make test adds it)"),
]


def _daily_bars(symbol, count: int = 90) -> None:
    """A gentle up-trend with a wiggle, so every indicator has values and the chart has something to draw."""
    start = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
    for n in range(count):
        base = 100 + n * 0.4 + 3 * math.sin(n / 4)
        open_, close = Decimal(f"{base:.2f}"), Decimal(f"{base + 0.6 * math.cos(n / 3):.2f}")
        BarFactory(symbol=symbol, timestamp=start + dt.timedelta(days=n), open=open_, close=close)


@pytest.fixture
def trader(transactional_db):
    user = UserFactory(username="trader", password=PASSWORD)
    symbol = SymbolFactory(symbol="BRWS", name="Browser Test Corp")
    _daily_bars(symbol)
    BrokerConnectionFactory(owner=user, name="Paper account")
    IndicatorConfigFactory(owner=user, name="RSI 14", indicator_type="RSI", parameters={"period": 14})
    IndicatorConfigFactory(owner=user, name="EMA 20", indicator_type="EMA", parameters={"period": 20})
    return user


@pytest.fixture
def page(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        yield context.new_page()
        context.close()
        browser.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)


def test_create_run_and_inspect_a_strategy_in_a_browser(trader, s3_storage, celery_worker_process, live_server, page):
    from trading.models import Strategy, StrategyExecution

    base = live_server.url
    # sign in
    page.goto(f"{base}/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", "trader")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    _shot(page, "01-dashboard-empty")

    # 1. symbol: live search as you type, pick the result
    page.click("text=New strategy")
    page.fill("#symbol-search", "brw")
    page.wait_for_selector("#symbol-results input[type=radio]")
    page.check("#symbol-results input[type=radio]")
    page.fill("#id_symbol-name", "Browser swing")
    page.fill("#id_symbol-lookback_bars", "40")
    _shot(page, "02-flow-symbol")
    page.click("#next-step")
    # 2. indicators (HTMX swaps the step in place and pushes its URL)
    page.wait_for_url("**/strategies/new/indicators/")
    page.check("text=RSI 14")
    page.check("text=EMA 20")
    page.click("#next-step")
    # 3. prompt and analyst
    page.wait_for_url("**/strategies/new/prompt/")
    page.select_option("#id_prompt-analyst", "rules")
    page.click("#next-step")
    # 4. schedule: a bad cron first, refused inline
    page.wait_for_url("**/strategies/new/schedule/")
    page.fill("#id_schedule-schedule_cron", "whenever")
    # with a simulated account the data defaults to playback of the stored history (stored bars would be stale)
    assert page.locator("#id_schedule-market_data_source").input_value() == "playback"
    page.click("#next-step")
    page.wait_for_selector("#field-schedule-schedule_cron .errorlist")
    _shot(page, "03-flow-schedule-error")
    page.fill("#id_schedule-schedule_cron", "30 10 * * 1-5")
    page.click("#next-step")
    # 5. risk, then create
    page.wait_for_url("**/strategies/new/risk/")
    page.fill("#id_risk-max_position_value", "5000")
    _shot(page, "04-flow-risk")
    page.click("#next-step")
    page.wait_for_url("**/strategies/*/")
    strategy = Strategy.objects.get(owner=trader, name="Browser swing")
    assert {link.indicator.name for link in strategy.strategy_indicators.all()} == {"RSI 14", "EMA 20"}
    assert strategy.periodic_task.enabled
    _shot(page, "05-strategy")

    # run it: the worker picks the run up; the lineage page polls until the run finishes
    page.click("#run-now")
    page.wait_for_url("**/lineage/?execution=*")
    page.wait_for_selector("#execution-panel .badge:text-matches('COMPLETED|SKIPPED|FAILED')", timeout=90_000)
    execution = StrategyExecution.objects.get(strategy=strategy)
    assert execution.status == "COMPLETED", execution.error
    assert page.locator("#steps .step").count() == 9
    assert page.locator("#execution-panel[hx-trigger]").count() == 0  # polling stopped
    assert page.locator("#execution-select option:checked").inner_text().endswith(" · COMPLETED")  # polled label
    _shot(page, "06-lineage")

    # a step's detail: the chart the run stored, served back through the owner check
    page.click("#step-generate_charts >> text=Details")
    page.wait_for_url("**/generate_charts/")
    image = page.locator("img.chart-img").first
    image.wait_for()
    assert page.evaluate("img => img.naturalWidth", image.element_handle()) > 600
    _shot(page, "07-step-charts")
    page.click("nav[aria-label=steps] >> text=6")
    page.wait_for_url("**/parse_signal/")
    assert page.locator("text=Trading signal").count() == 1
    _shot(page, "08-step-signal")

    # the dashboard now shows the run
    page.goto(f"{base}/")
    assert page.locator("#strategies >> text=Browser swing").count() == 1
    _shot(page, "09-dashboard")
    assert os.path.exists(OUTPUT / "09-dashboard.png")


def test_a_refused_channel_url_is_said_on_its_field_in_place(trader, live_server, page):
    # the settings card is swapped by HTMX: a form sent back with errors (422) must be swapped in, not dropped
    base = live_server.url
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", "trader")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/settings/")
    page.fill("#channel-add input[name=url]", "json://127.0.0.1:5000/hook")
    page.click("#channel-add button[type=submit]")

    error = page.locator("#channel-add #field-url .errorlist")
    error.wait_for(timeout=10_000)
    assert "loopback or private network" in error.inner_text()
    _shot(page, "10-settings-channel-refused")
    page.fill("#channel-add input[name=url]", "tgram://123456789:AAHsecretTOKEN/987654321")
    page.click("#channel-add button[type=submit]")
    page.locator(".channel code.masked").wait_for(timeout=10_000)
    assert "AAHsecretTOKEN" not in page.content()

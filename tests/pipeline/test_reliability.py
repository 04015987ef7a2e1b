"""Reliability with a real Celery worker, PostgreSQL and Redis; IBKR and Anthropic stood in for over loopback HTTP.

A worker killed between sending an order and recording the reply, then the run resumed: exactly one order at the
broker. The same strategy triggered twice at once: one execution. Broker 401/429/503 and an LLM timeout mid-run: a
failed or skipped execution with its lineage, never a crash.
"""

from __future__ import annotations

import socket
import threading
import time
from decimal import Decimal

import pytest

from lineage.models import LineageRecord
from notifications.models import Notification
from orders.models import Order
from signals_app.models import Analyst
from tests.brokers.gateway import AAPL, ACCOUNT, FakeGateway, LoopbackGateway
from tests.factories import BrokerConnectionFactory, SymbolFactory
from tests.pipeline.conftest import strategy_with_indicators
from trading.models import ExecutionStatus, SkipReason, StrategyExecution
from trading.tasks import strategy_due

pytestmark = pytest.mark.slow


def wait_for_finished_execution(strategy, timeout: float = 90) -> StrategyExecution:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution = StrategyExecution.objects.filter(strategy=strategy).exclude(status="RUNNING").first()
        if execution is not None:
            return execution
        time.sleep(0.25)
    raise AssertionError(f"no execution of {strategy} finished within {timeout}s")


@pytest.fixture
def gateway():
    fake = FakeGateway(cash=Decimal("1000000"))
    with LoopbackGateway(fake) as loopback:
        yield fake, loopback.url


@pytest.fixture
def ibkr_strategy(owner, gateway):
    _, url = gateway
    connection = BrokerConnectionFactory(
        owner=owner,
        ibkr=True,
        gateway_url=url,
        account_id=ACCOUNT,
        verify_tls="false",
        authenticated=True,
        connected=True,
    )
    symbol = SymbolFactory(symbol="AAPL", conid=AAPL)
    return strategy_with_indicators(owner, symbol=symbol, broker_connection=connection, max_position_value=5000)


def worker_env(worker, **env) -> None:
    worker.env.update({"IBKR_TIMEOUT_SECONDS": "2", **env})
    worker.restart()


def test_a_worker_killed_between_sending_the_order_and_its_reply_resumes_to_exactly_one_order(
    celery_worker_process, s3_storage, gateway, ibkr_strategy
):
    fake, _ = gateway
    worker_env(celery_worker_process)
    fake.stall_next_order = True  # the POST lands at the broker; its reply never comes back

    strategy_due.delay(ibkr_strategy.pk)
    assert fake.stalled.wait(90), celery_worker_process.log_tail()
    celery_worker_process.kill()
    fake.release.set()
    celery_worker_process.start()  # the unacknowledged run is delivered again and resumes

    execution = wait_for_finished_execution(ibkr_strategy)

    assert execution.status == ExecutionStatus.COMPLETED, execution.error
    assert fake.order_posts() == 1
    assert len(fake.orders) == 1
    order = Order.objects.get(strategy=ibkr_strategy)
    assert order.status == "SUBMITTED"
    assert order.broker_order_id == str(next(iter(fake.orders)))
    steps = list(LineageRecord.objects.for_execution(execution.pk).values_list("step_name", flat=True))
    assert steps[-2:] == ["place_order", "execution_complete"]
    assert StrategyExecution.objects.filter(strategy=ibkr_strategy).count() == 1


def test_the_same_strategy_triggered_twice_at_once_runs_once(celery_worker_process, s3_storage, owner):
    strategy = strategy_with_indicators(owner)

    strategy_due.delay(strategy.pk)
    strategy_due.delay(strategy.pk)
    wait_for_finished_execution(strategy)
    deadline = time.monotonic() + 90
    while (
        StrategyExecution.objects.filter(strategy=strategy, status="RUNNING").exists() and time.monotonic() < deadline
    ):
        time.sleep(0.25)
    time.sleep(2)  # room for a third execution to appear, if one were started

    # one run, and the trigger that found it running is on record as skipped (claim_held), not lost
    executions = list(StrategyExecution.objects.filter(strategy=strategy).values_list("status", "skip_reason"))
    assert sorted(executions) == [(ExecutionStatus.COMPLETED, ""), (ExecutionStatus.SKIPPED, SkipReason.CLAIM_HELD)]


@pytest.mark.parametrize(
    ("status", "expected", "reason"),
    [
        pytest.param(401, ExecutionStatus.SKIPPED, "not authenticated", id="401-skipped"),
        pytest.param(429, ExecutionStatus.FAILED, "RateLimited", id="429-failed"),
        pytest.param(503, ExecutionStatus.FAILED, "Transient", id="503-failed"),
    ],
)
def test_a_broker_error_mid_run_ends_the_run_with_its_lineage(
    celery_worker_process, s3_storage, gateway, ibkr_strategy, status, expected, reason
):
    fake, _ = gateway
    worker_env(celery_worker_process)
    # the account summary before sizing the entry is where the run meets the broker first
    fake.fail_next.append((r"/portfolio/[^/]+/summary", status, {"error": f"HTTP {status}", "statusCode": status}))

    strategy_due.delay(ibkr_strategy.pk)
    execution = wait_for_finished_execution(ibkr_strategy)

    assert execution.status == expected
    assert reason.lower() in execution.error.lower()
    records = dict(LineageRecord.objects.for_execution(execution.pk).values_list("step_name", "status"))
    assert records["parse_signal"] == "success"
    assert records["risk_check"] == ("skipped" if expected == ExecutionStatus.SKIPPED else "error")
    assert ("execution_error" in records) == (expected == ExecutionStatus.FAILED)
    assert fake.order_posts() == 0
    # and the trader is told: a failed run as run_failed, a session that is down as run_skipped (a reason to act on)
    told = "run_skipped" if expected == ExecutionStatus.SKIPPED else "run_failed"
    assert wait_for(lambda: Notification.objects.filter(execution=execution, kind=told).exists())
    assert celery_worker_process.alive


def wait_for(condition, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def silent_llm():
    """An 'Anthropic' that accepts the connection and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(2)
    for connection in held:
        connection.close()
    server.close()


def test_an_llm_timeout_mid_run_fails_the_run_with_its_lineage(celery_worker_process, s3_storage, owner, silent_llm):
    strategy = strategy_with_indicators(owner, analyst=Analyst.ANTHROPIC)
    worker_env(
        celery_worker_process,
        ANTHROPIC_BASE_URL=silent_llm,
        ANTHROPIC_API_KEY="sk-ant-test-not-a-real-key",
        LLM_TIMEOUT_SECONDS="1",
    )

    strategy_due.delay(strategy.pk)
    execution = wait_for_finished_execution(strategy)

    assert execution.status == ExecutionStatus.FAILED
    records = dict(LineageRecord.objects.for_execution(execution.pk).values_list("step_name", "status"))
    assert records["generate_charts"] == "success"
    assert records["llm_analysis"] == "error"
    assert records["execution_error"] == "error"
    assert "parse_signal" not in records
    assert celery_worker_process.alive

"""Locks, throttles and semaphores hold across processes, on Redis (REDIS_URL set) and on the database (unset).

Cross-process tests fork real processes; on the database backend they use `transactional_db`, so each process's
claims are committed and seen by the others, exactly as in production.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid

import pytest
from django.db import connections

from core.coordination import LockTimeout, ThrottleTimeout, lock, semaphore, throttle

FORK = multiprocessing.get_context("fork")


@pytest.fixture(params=["redis", "database"])
def backend(request, settings):
    """Which store the module uses: Redis when REDIS_URL is set, else the database."""
    if request.param == "database":
        settings.REDIS_URL = ""
    return request.param


@pytest.fixture(params=["redis", pytest.param("database", marks=pytest.mark.django_db(transaction=True))])
def shared_backend(request, settings):
    """The same, for tests with several processes: the database backend's rows must be committed to be seen."""
    if request.param == "database":
        settings.REDIS_URL = ""
    return request.param


@pytest.fixture
def name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def run_in_processes(target, *args, count: int) -> list[multiprocessing.Process]:
    """Fork `count` processes running target(*args) and wait for them. Each opens its own database connection."""
    connections.close_all()  # a forked child must not share the parent's socket
    processes = [FORK.Process(target=target, args=args) for _ in range(count)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    return processes


def exit_codes(processes) -> list[int | None]:
    return [process.exitcode for process in processes]


class Occupancy:
    """Shared counters: how many processes are inside a section now, and the most there ever were."""

    def __init__(self) -> None:
        self.inside = FORK.Value("i", 0)
        self.most = FORK.Value("i", 0)
        self.completed = FORK.Value("i", 0, lock=False)  # updated without a lock of its own, on purpose

    def enter(self) -> None:
        with self.inside.get_lock():
            self.inside.value += 1
            self.most.value = max(self.most.value, self.inside.value)

    def leave(self) -> None:
        with self.inside.get_lock():
            self.inside.value -= 1


# --- lock -----------------------------------------------------------------------------------------------------------


def _count_under_lock(name: str, occupancy: Occupancy, rounds: int) -> None:
    for _ in range(rounds):
        with lock(name, ttl=30, wait=30):
            occupancy.enter()
            seen = occupancy.completed.value
            time.sleep(0.005)  # widen the window in which an unprotected read-modify-write would lose an update
            occupancy.completed.value = seen + 1
            occupancy.leave()
    connections.close_all()


def test_lock_lets_one_process_in_at_a_time(shared_backend, name):
    occupancy = Occupancy()

    processes = run_in_processes(_count_under_lock, name, occupancy, 5, count=4)

    assert exit_codes(processes) == [0, 0, 0, 0]
    assert occupancy.most.value == 1
    assert occupancy.completed.value == 20


def _hold_lock_until_killed(name: str, holding) -> None:
    with lock(name, ttl=3, wait=5):
        holding.set()
        time.sleep(120)


def test_lock_of_a_killed_holder_is_taken_over_after_its_ttl(shared_backend, name):
    connections.close_all()
    holding = FORK.Event()
    holder = FORK.Process(target=_hold_lock_until_killed, args=(name, holding))
    holder.start()
    assert holding.wait(timeout=30)
    holder.kill()
    holder.join(timeout=10)

    with pytest.raises(LockTimeout), lock(name, wait=0):
        pass
    with lock(name, ttl=5, wait=10):
        taken_over = True

    assert taken_over


@pytest.mark.django_db
def test_lock_is_free_again_once_released(backend, name):
    with lock(name, wait=0):
        pass

    with lock(name, wait=0):
        reacquired = True

    assert reacquired


@pytest.mark.django_db
def test_lock_is_released_when_the_block_raises(backend, name):
    with pytest.raises(RuntimeError), lock(name, wait=0):
        raise RuntimeError("step failed")

    with lock(name, wait=0):
        reacquired = True

    assert reacquired


@pytest.mark.django_db
def test_second_holder_times_out_while_the_first_holds(backend, name):
    with lock(name, ttl=30, wait=0), pytest.raises(LockTimeout, match=name), lock(name, wait=0.2):
        pass


@pytest.mark.django_db
def test_holder_whose_ttl_ran_out_does_not_release_the_next_holders_lock(backend, name):
    late_holder = lock(name, ttl=0.2, wait=0)
    late_holder.__enter__()
    time.sleep(0.4)
    next_holder = lock(name, ttl=30, wait=0)
    next_holder.__enter__()  # the first holder's ttl ran out, so this one takes the lock

    late_holder.__exit__(None, None, None)  # the first holder finishes late and "releases"

    with pytest.raises(LockTimeout), lock(name, wait=0):
        pass  # still held by the next holder
    next_holder.__exit__(None, None, None)


# --- semaphore ------------------------------------------------------------------------------------------------------


def _work_under_semaphore(name: str, occupancy: Occupancy) -> None:
    with semaphore(name, size=2, ttl=30, wait=30):
        occupancy.enter()
        time.sleep(0.2)
        occupancy.leave()
    connections.close_all()


def test_semaphore_admits_at_most_its_size_across_processes(shared_backend, name):
    occupancy = Occupancy()

    processes = run_in_processes(_work_under_semaphore, name, occupancy, count=5)

    assert exit_codes(processes) == [0] * 5
    assert occupancy.most.value <= 2


@pytest.mark.django_db
def test_semaphore_refuses_one_more_than_its_size(backend, name):
    with (
        semaphore(name, size=2, wait=0),
        semaphore(name, size=2, wait=0),
        pytest.raises(LockTimeout),
        semaphore(name, size=2, wait=0.2),
    ):
        pass
    with semaphore(name, size=2, wait=0):
        freed = True

    assert freed


def test_semaphore_of_size_zero_is_refused(name):
    with pytest.raises(ValueError), semaphore(name, size=0):
        pass


# --- throttle -------------------------------------------------------------------------------------------------------

THROTTLE_INTERVAL = 0.5
CLOCK_SLACK = 0.15  # scheduling jitter between a process waking up and reading the clock


def _call_when_allowed(key: str, calls, index) -> None:
    throttle(key, interval=THROTTLE_INTERVAL, max_wait=30)
    with index.get_lock():
        calls[index.value] = time.time()
        index.value += 1
    connections.close_all()


def test_throttle_spaces_calls_from_many_processes(shared_backend, name):
    calls = FORK.Array("d", 4, lock=False)
    index = FORK.Value("i", 0)

    processes = run_in_processes(_call_when_allowed, name, calls, index, count=4)

    assert exit_codes(processes) == [0] * 4
    times = sorted(calls[:])
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert min(gaps) >= THROTTLE_INTERVAL - CLOCK_SLACK, gaps


@pytest.mark.django_db
def test_throttle_refuses_a_turn_beyond_max_wait_without_using_it_up(backend, name):
    throttle(name, interval=10, max_wait=1)  # takes the turn now; the next is 10 s away

    with pytest.raises(ThrottleTimeout, match=name):
        throttle(name, interval=10, max_wait=1)
    with pytest.raises(ThrottleTimeout):
        throttle(name, interval=10, max_wait=9.5)  # still 10 s away: the refused call reserved nothing
    throttle(f"{name}-other-key", interval=10, max_wait=0)  # keys are independent


@pytest.mark.django_db
def test_throttle_waits_for_the_callers_turn(backend, name):
    throttle(name, interval=THROTTLE_INTERVAL)
    started = time.monotonic()

    throttle(name, interval=THROTTLE_INTERVAL)

    assert time.monotonic() - started >= THROTTLE_INTERVAL - CLOCK_SLACK

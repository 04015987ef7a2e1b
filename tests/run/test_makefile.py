"""The Makefile's contract, read from `make -n` (what each target would run, in order, without running it)."""

from __future__ import annotations

import subprocess

import pytest

from tests.run.helpers import PROJECT_DIR, clean_env


def dry_run(tmp_path, target: str, **env: str) -> list[str]:
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", target, *(f"{name}={value}" for name, value in env.items())],
        cwd=PROJECT_DIR,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def position(lines: list[str], fragment: str) -> int:
    matches = [number for number, line in enumerate(lines) if fragment in line]
    assert matches, f"{fragment!r} not in:\n" + "\n".join(lines)
    return matches[0]


def test_make_run_migrates_seeds_collects_static_then_starts_the_procfile_on_port_8000(tmp_path):
    lines = dry_run(tmp_path, "run")

    steps = [
        position(lines, "manage.py migrate --noinput"),
        position(lines, "manage.py seed_demo"),
        position(lines, "manage.py collectstatic --noinput"),
        position(lines, "honcho start --env /dev/null --port 8000"),
    ]
    assert steps == sorted(steps)


def test_make_run_port_can_be_changed(tmp_path):
    lines = dry_run(tmp_path, "run", PORT="8123")

    position(lines, "honcho start --env /dev/null --port 8123")


@pytest.mark.parametrize(
    ("given", "database", "redis"),
    [
        pytest.param(
            {},
            "postgres://postgres@127.0.0.1:5432/trading",
            "redis://127.0.0.1:6379/15",
            id="defaults",
        ),
        pytest.param(
            {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/mine", "REDIS_URL": "redis://127.0.0.1:6379/9"},
            "postgres://postgres@127.0.0.1:5432/mine",
            "redis://127.0.0.1:6379/9",
            id="callers-own",
        ),
    ],
)
def test_make_test_creates_the_database_and_runs_pytest_on_postgresql_and_redis(tmp_path, given, database, redis):
    lines = dry_run(tmp_path, "test", **given)

    main_suite = next(i for i, line in enumerate(lines) if "-m pytest" in line and "main=$?" in line)
    assert position(lines, f'.ci/create_database.py "{database}"') < main_suite
    pytest_line = lines[main_suite]
    assert f'DATABASE_URL="{database}"' in pytest_line
    assert f'REDIS_URL="{redis}"' in pytest_line


def test_make_test_also_runs_the_sqlite_lane_on_the_embedded_default(tmp_path):
    text = "\n".join(dry_run(tmp_path, "test"))

    lane = text[text.index("TEST_LANE=sqlite") : text.index("> var/test-lane/pytest.log")]
    assert 'DATABASE_URL="sqlite:///' in lane and "REDIS_URL= " in lane
    assert all(folder in lane for folder in ("tests/pipeline", "tests/replay", "tests/pages", "tests/run"))
    # both lanes must pass for make test to pass
    assert "[ $main -eq 0 ] && [ $lane -eq 0 ]" in text


def test_make_lint_runs_ruff_and_the_migrations_check(tmp_path):
    lines = dry_run(tmp_path, "lint")

    position(lines, "ruff check .")
    position(lines, "ruff format --check .")
    position(lines, "manage.py makemigrations --check --dry-run")


def test_make_bench_runs_every_benchmark_script_with_the_test_services(tmp_path):
    text = "\n".join(dry_run(tmp_path, "bench"))

    assert "for script in benchmarks/*.py" in text
    assert 'DATABASE_URL="postgres://postgres@127.0.0.1:5432/trading"' in text

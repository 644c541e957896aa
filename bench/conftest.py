"""pytest-benchmark front-end of :mod:`framekit.apps.benchmarks`.

Design notes
------------
The suites measure exactly what ``framekit bench`` measures: the comparisons,
contestants and workloads all come from :mod:`framekit.apps.benchmarks.catalogue`
(profile ``all``, the whole matrix of the issue).  A test module names the
kind it runs (``KIND = "decode"``); :func:`pytest_generate_tests` makes one
test per contestant of every comparison of that kind, and pytest-benchmark
groups the rows of a comparison together so they read side by side.

A server row times itself (its load generator, in another process, counts the
frames that came back): the benchmark's clock is replaced by one that advances
by the run's seconds per frame, so pytest-benchmark's statistics are per frame
(its "ops" are frames/s), and the run's latencies go to ``extra_info``.

Every contestant's output is checked before it is timed (a wrong one fails
its test and is never timed), and the output of the timed runs is checked
again afterwards.  The garbage collector is off while timing
(``--benchmark-disable-gc`` is forced on).

``--benchmark-disable`` is the smoke mode CI runs: workloads shrink to a few
KiB and each contestant runs once, checked, so the suite proves it works in
seconds.  ``--bench-quick`` measures only the comparisons of ``framekit bench
--quick`` (the rows the speed targets are about): about a minute instead of
five or more for the whole matrix.  Optional peers that are not installed are
skipped.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, Tuple

import pytest

from framekit.apps.benchmarks import catalogue, harness

#: Workload scale in smoke mode (--benchmark-disable): a few KiB per run.
SMOKE_SCALE = 0.01


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench-quick",
        action="store_true",
        help="only the comparisons of 'framekit bench --quick' (about a minute)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config.option, "benchmark_disable_gc"):
        config.option.benchmark_disable_gc = True


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" not in metafunc.fixturenames:
        return
    kind = metafunc.module.KIND
    profile = "quick" if metafunc.config.getoption("bench_quick", default=False) else "all"
    comparisons = catalogue.comparisons(profile, kind)
    if kind == "server" and metafunc.config.getoption("benchmark_disable", default=False):
        # Smoke mode: one load is proof enough that every server runs (each costs seconds).
        comparisons = [c for c in comparisons if c.scenario.key == "server-100x1"]
    cases = [
        pytest.param((comparison, contestant), id=f"{comparison.id}/{contestant.name}")
        for comparison in comparisons
        for contestant in comparison.contestants
    ]
    metafunc.parametrize("case", cases)


@pytest.fixture(scope="session")
def bench_session(request: pytest.FixtureRequest) -> Iterator[harness.Session]:
    """The benchmark session (workload scale; the end-to-end sender process)."""
    smoke = bool(request.config.getoption("benchmark_disable", default=False))
    with harness.Session(SMOKE_SCALE if smoke else 1.0) as session:
        yield session


@pytest.fixture(scope="session")
def workloads() -> Dict[str, Any]:
    """Workloads built so far, by comparison id: each is built once per session."""
    return {}


Case = Tuple[harness.Comparison, harness.Contestant]


def _self_timed(benchmark: Any, runner: Any, rounds: int) -> Any:
    """Benchmark a runner that returns :class:`~harness.SelfTimed`, per frame."""
    clock = [0.0]

    def run() -> Any:
        output = runner()
        if isinstance(output, harness.SelfTimed):
            clock[0] += output.seconds_per_frame
            benchmark.extra_info.update(output.metrics)
        return output

    benchmark._timer = lambda: clock[0]  # read when each round starts and ends
    return benchmark.pedantic(run, setup=runner.before, teardown=runner.after, rounds=rounds)


@pytest.fixture
def measure(
    benchmark: Any,
    bench_session: harness.Session,
    workloads: Dict[str, Any],
    request: pytest.FixtureRequest,
) -> Callable[[Case], None]:
    """``measure(case)``: check the contestant, then benchmark it and check again."""
    smoke = bool(request.config.getoption("benchmark_disable", default=False))

    def run(case: Case) -> None:
        comparison, contestant = case
        reason = harness.unavailable(contestant)
        if reason is not None:
            pytest.skip(reason)
        workload = workloads.get(comparison.id)
        if workload is None:
            workload = workloads[comparison.id] = comparison.build(bench_session)
        server = comparison.scenario.kind == "server"
        # A server run verifies every frame it times; in smoke mode one run is enough.
        if not (server and smoke):
            wrong = harness.check(contestant, workload)
            if wrong is not None:
                pytest.fail(f"{contestant.label}: wrong output, not timed: {wrong}")
        runner = contestant.make(workload, comparison.scenario.keep)
        benchmark.group = comparison.title
        benchmark.extra_info.update(
            frames=workload.frames, payload_bytes=workload.payload_bytes, role=contestant.role
        )
        before = getattr(runner, "before", None)
        if server:
            output = _self_timed(benchmark, runner, comparison.repeats or 3)
        elif before is not None:
            # End to end: arm the sender before each round, collect its
            # acknowledgement after it, both outside the timer.
            output = benchmark.pedantic(runner, setup=before, teardown=runner.after, rounds=5)
        else:
            output = benchmark(runner)
        wrong = workload.verify(output)
        if wrong is not None:
            pytest.fail(f"{contestant.label}: wrong output while timed: {wrong}")

    return run

"""The server benchmark: fast tests that it measures what it says, no timing asserted.

The whole workload runs, for a fraction of a second, against framekit's
blocking server and the raw floor, through the same harness and command as
``framekit bench``; a deliberately broken server proves that a wrong echo is
caught.  Netty is not needed (CI has no Java): without it its row is skipped
with the reason, and that is tested too.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, Iterator

import pytest

pytest.importorskip("framekit.apps.benchmarks._loadgen", reason="the load generator is Linux only")

from framekit.apps import cli
from framekit.apps.benchmarks import catalogue, harness, report, servers, targets
from framekit.apps.benchmarks._loadgen import bucket_value, expected_frame
from framekit.apps.benchmarks.echo_servers import BROKEN_EVERY, SERVERS
from framekit.apps.benchmarks.harness import Comparison, Session, Settings
from framekit.apps.benchmarks.loadgen import LoadSpec, percentile, run_load

pytestmark = pytest.mark.network

#: Seconds of every run here: long enough for thousands of frames (on a busy CI machine
#: too), short enough for CI.
RUN = 0.3


@pytest.fixture
def session() -> Iterator[Session]:
    with Session(1.0, server_duration=RUN, server_warmup=0.05) as s:
        yield s


def _broken() -> harness.Contestant:
    spec = servers.ServerSpec("broken", servers._python_server("broken").argv)
    return harness.Contestant("broken", "broken echo", harness.ROLE_PEER, servers._make(spec))


def test_frames_vary_and_carry_their_length() -> None:
    frames = {expected_frame(c, s, 64) for c in range(3) for s in range(50)}
    assert len(frames) == 150  # no two frames of a run alike: a swap or repeat is caught
    frame = expected_frame(1, 7, 64)
    assert len(frame) == 68 and frame[:4] == (64).to_bytes(4, "big")
    assert len(expected_frame(0, 0, 5)) == 9 and expected_frame(0, 0, 0) == b"\0\0\0\0"


def test_latency_histogram_buckets_and_percentiles() -> None:
    values = [bucket_value(i) for i in range(400)]
    assert values == sorted(values) and values[:64] == list(range(64))
    assert all(b / a < 1.04 for a, b in zip(values[64:], values[65:]))  # ~3% buckets
    hist = {10: 50, 200: 49, 300: 1}
    assert percentile(hist, 0.5) == pytest.approx(10.5)
    assert bucket_value(200) <= percentile(hist, 0.99) <= bucket_value(201)
    assert math.isnan(percentile({}, 0.5))


def test_the_workload_runs_checked_against_framekit_and_the_floor(session: Session) -> None:
    """Every row of one load through the harness: right servers timed, the broken one not."""
    comparison = next(
        c for c in catalogue.comparisons("default", "server") if c.id.endswith("16/64")
    )
    keep = ("blocking", servers.FLOOR, servers.NETTY)
    comparison = Comparison(
        comparison.scenario,
        comparison.size,
        (*(c for c in comparison.contestants if c.name in keep), _broken()),
        comparison.build,
        comparison.floor,
        comparison.reference,
        repeats=1,
    )
    rows = {r.contestant: r for r in harness.measure(comparison, session, Settings(1, 0.0))}
    for name in ("blocking", servers.FLOOR):
        row = rows[name]
        assert row.ok, (name, row.status, row.note)
        assert row.frames == 1 and row.frames_per_s > 1000  # seconds per frame, inverted
        assert 0 < row.metrics["p50_us"] <= row.metrics["p99_us"] <= row.metrics["max_us"]
        assert row.metrics["frames"] > 100 and "min_conn_frames" in row.metrics
        assert row.vs_floor is not None
    assert rows[servers.FLOOR].vs_floor == 1.0
    broken = rows["broken"]
    assert broken.status in ("failed", "error") and broken.runs == []  # never timed
    assert "the echo differs from the frame sent" in broken.note
    netty = rows[servers.NETTY]
    if servers.netty_unavailable() is None:
        assert netty.ok, netty.note
        assert rows["blocking"].vs_reference is not None
    else:
        assert netty.status == "skipped" and "libnetty-java" in netty.note

    table = report.format_table(list(rows.values()), targets.evaluate(rows.values()))
    assert "p50" in table and "p99" in table and "vs floor" in table
    assert "WRONG OUTPUT" in table and "echo differs" in table
    markdown = report.markdown_table(list(rows.values()))
    assert "**echo server**" not in markdown  # one load: its whole title
    assert "| framekit blocking serve() |" in markdown and " / " in markdown


def test_a_wrong_or_silent_server_fails_the_run() -> None:
    with Session() as s:
        broken = s.resource("b", lambda: servers.ServerProcess(servers._python_server("broken")))
        result = run_load(LoadSpec(broken.address, 4, 8, 64, 0.0, 1.0))
    assert result.error is not None and "differs" in result.error
    assert result.frames < 4 * BROKEN_EVERY  # it stopped at the first wrong frame
    workload = servers.ServerWorkload(Session(), 1, 1, 64, RUN, 0.0)
    timed = harness.SelfTimed(0, RUN, {}, result)
    assert "differs" in (workload.verify(timed) or "")
    assert "no frame" in (workload.verify(harness.SelfTimed(0, RUN, {}, type(result)())) or "")
    assert workload.verify(None) is not None


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_server_with_a_jit_is_loaded_once_before_its_first_run() -> None:
    """Netty's JVM compiles under load: measured cold it ran at less than half its rate."""
    argv = servers._python_server("floor").argv
    cold = servers.ServerProcess(servers.ServerSpec("floor", argv))
    warm = servers.ServerProcess(servers.ServerSpec("floor", argv, jit_warmup=0.5))
    try:
        # The warm-up's load went through the server: it has spent CPU time echoing.
        assert _cpu_seconds(warm.pid) > _cpu_seconds(cold.pid) + 0.2
    finally:
        cold.close()
        warm.close()
    broken = servers.ServerSpec("broken", servers._python_server("broken").argv, jit_warmup=0.5)
    with pytest.raises(RuntimeError, match=r"warm-up.*differs"):
        servers.ServerProcess(broken)


@pytest.mark.parametrize("name", ["anyio-asyncio", "anyio-trio"])
def test_the_anyio_servers_echo_under_load(name: str) -> None:
    """framekit.anyio beside the others in the server table, on both backends."""
    pytest.importorskip("anyio")
    pytest.importorskip("trio")
    with Session() as s:
        server = s.resource(name, lambda: servers.ServerProcess(servers._python_server(name)))
        result = run_load(LoadSpec(server.address, 4, 8, 64, 0.0, 0.5))
    assert result.error is None and result.frames > 100, result


def test_netty_is_skipped_with_the_reason_without_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers.shutil, "which", lambda name: None)
    reason = servers.netty_unavailable()
    assert reason is not None and "java" in reason and "libnetty-java" in reason
    netty = next(c for c in servers.server_contestants() if c.name == servers.NETTY)
    assert harness.unavailable(netty) == reason


def test_contestants_cover_the_issue_and_targets_name_real_rows() -> None:
    names = {c.name for c in servers.server_contestants()}
    assert {
        "blocking",
        "asyncio",
        "asyncio-uvloop",
        "readexactly",
        "readexactly-uvloop",
        "anyio-asyncio",
        "anyio-trio",
        "twisted",
        servers.NETTY,
        servers.FLOOR,
    } <= names
    assert "broken" in SERVERS and "broken" not in names
    ids = {
        f"{c.id}/{x.name}" for c in catalogue.comparisons("all", "server") for x in c.contestants
    }
    assert {"server-100x16/64/netty", "server-10x64/64/floor", "server-100x1/64/blocking"} <= ids
    assert "server-workers-100x16/64/serve-2w" in ids
    for t in targets.TARGETS:
        if t.comparison.startswith("server-"):
            assert f"{t.comparison}/{t.subject}" in ids and f"{t.comparison}/{t.reference}" in ids
            assert t.why
    quick = {
        f"{c.id}/{x.name}" for c in catalogue.comparisons("quick", "server") for x in c.contestants
    }
    assert "server-10x64/64/asyncio-uvloop" in quick and "server-10x64/64/twisted" not in quick


def test_framekit_bench_prints_the_server_table_and_its_json(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    status = cli.main(
        [
            "bench",
            "--filter",
            "server-100x1/64/blocking",
            "--filter",
            "server-100x1/64/floor",
            "--server-time",
            str(RUN),
            "--server-warmup",
            "0.05",
            "--json",
            str(out),
            "-q",
        ]
    )
    captured = capsys.readouterr()
    assert status == 0, captured.out + captured.err
    assert "echo server, 100 connections x 1 in flight (ping-pong)" in captured.out
    assert "p50" in captured.out and "framekit blocking serve()" in captured.out
    data: Dict[str, Any] = json.loads(out.read_text())
    rows = {r["contestant"]: r for r in data["results"]}
    assert rows["blocking"]["status"] == "ok" and rows["blocking"]["metrics"]["p99_us"] > 0
    assert rows["blocking"]["frames_per_s"] > 0 and rows["blocking"]["vs_floor"] > 0
    assert data["settings"]["server_time"] == RUN

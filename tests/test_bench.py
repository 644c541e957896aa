"""The benchmark harness and ``framekit bench``: fast tests, no timing asserted.

What is tested is that the benchmarks tell the truth: a wrong contestant is
never timed, repeats rotate the order and run with the garbage collector off,
the median is what is reported, every row says what happened to it, the
outputs (table, JSON, Markdown, chart) are written, and the pytest-benchmark
suite in ``bench/`` runs (in its smoke mode).  Speeds are never asserted.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

from framekit.apps import cli
from framekit.apps.benchmarks import catalogue, harness, report, targets
from framekit.apps.benchmarks.codec_contestants import NaiveDecoder, feed_runner
from framekit.apps.benchmarks.floors import floor_contestants
from framekit.apps.benchmarks.harness import (
    Comparison,
    Contestant,
    Result,
    Scenario,
    Session,
    Settings,
)
from framekit.apps.benchmarks.receivers import EndToEndWorkload
from framekit.apps.benchmarks.workloads import (
    CHUNK_7,
    DecodeWorkload,
    EncodeWorkload,
    make_payloads,
    size_label,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: pytest-benchmark's option that makes bench/ run its smoke mode.
SMOKE = ["--benchmark-disable"]
#: Options that make any `framekit bench` run tiny.
TINY = ["--repeats", "1", "--min-time", "0", "--scale", "0.01", "-q"]

STREAM = Scenario("decode-test-stream", "decode, test, stream", "decode", keep=False)
LIST = Scenario("decode-test-list", "decode, test, list", "decode", keep=True)


def _comparison(
    contestants: List[Contestant], scenario: Scenario = STREAM, size: int = 16, count: int = 300
) -> Comparison:
    def build(session: Session) -> DecodeWorkload:
        return DecodeWorkload(size, count, 64, scenario.keep)

    return Comparison(scenario, size, tuple(contestants), build, floor="floor-bytes")


def _framekit(
    LP: Callable[..., Any], name: str = "fk", role: str = harness.ROLE_FRAMEKIT
) -> Contestant:
    def make(w: DecodeWorkload, keep: bool) -> harness.Runner:
        return feed_runner(LP(4).decoder, w.chunks, keep)

    return Contestant(name, f"framekit {name}", harness.ROLE_FRAMEKIT, make)


def _dropping_one(calls: List[bool]) -> Contestant:
    """A fast decoder that loses the last frame; records every runner it makes."""

    def make(w: DecodeWorkload, keep: bool) -> harness.Runner:
        calls.append(keep)

        def run() -> Any:
            frames = NaiveDecoder().feed(w.wire)
            return frames[:-1] if keep else len(frames) - 1

        return run

    return Contestant("wrong", "fast but wrong", harness.ROLE_PEER, make)


@pytest.fixture
def session() -> Iterator[Session]:
    with Session(1.0) as s:
        yield s


# --- the harness ------------------------------------------------------------------


def test_a_wrong_contestant_is_never_timed(LP: Callable[..., Any], session: Session) -> None:
    calls: List[bool] = []
    comparison = _comparison(
        [_framekit(LP), _dropping_one(calls), *floor_contestants("floor-bytes")]
    )
    rows = {r.contestant: r for r in harness.measure(comparison, session, Settings(2, 0.0))}
    wrong = rows["wrong"]
    assert wrong.status == "failed"
    assert "299 frames instead of 300" in wrong.note
    assert wrong.runs == [] and wrong.vs_floor is None
    assert calls == [True]  # only the check run was built: no timed runner
    assert rows["fk"].ok and len(rows["fk"].runs) == 2
    assert rows["fk"].vs_floor is not None and rows["fk"].frames == 300


def test_output_that_goes_wrong_while_timed_is_an_error(
    LP: Callable[..., Any], session: Session
) -> None:
    good = _framekit(LP)

    def make(w: DecodeWorkload, keep: bool) -> harness.Runner:
        runs = iter(range(100))

        def run() -> List[bytes]:
            frames = LP(4).decoder().feed(w.wire)
            return frames if next(runs) == 0 else frames[1:]  # right only the first time

        return run

    flaky = Contestant("flaky", "flaky", harness.ROLE_PEER, make)
    rows = harness.measure(_comparison([good, flaky], LIST), session, Settings(2, 0.0))
    assert rows[0].ok
    assert rows[1].status == "error" and "while timed" in rows[1].note
    assert rows[1].runs == []


def test_a_raising_or_missing_contestant_gets_a_row_saying_so(session: Session) -> None:
    def make(w: DecodeWorkload, keep: bool) -> harness.Runner:
        def run() -> None:
            raise RuntimeError("boom")

        return run

    raising = Contestant("raising", "raising", harness.ROLE_PEER, make)
    missing = Contestant(
        "missing", "missing", harness.ROLE_PEER, make, needs=("framekit_no_such_module",)
    )
    attr = Contestant("attr", "attr", harness.ROLE_PEER, make, needs=("framekit:NoSuchThing",))
    rows = harness.measure(_comparison([raising, missing, attr]), session, Settings(1, 0.0))
    assert [r.status for r in rows] == ["failed", "skipped", "skipped"]
    assert "RuntimeError: boom" in rows[0].note
    assert "framekit_no_such_module" in rows[1].note
    assert "framekit.NoSuchThing" in rows[2].note


def test_repeats_rotate_the_order_with_the_gc_off(session: Session) -> None:
    log: List[str] = []
    gc_states: List[bool] = []

    def recorder(name: str) -> Contestant:
        def make(w: DecodeWorkload, keep: bool) -> harness.Runner:
            def run() -> Optional[List[bytes]]:
                log.append(name)
                gc_states.append(gc.isenabled())
                return list(w.payloads) if keep else len(w.payloads)

            return run

        return Contestant(name, name, harness.ROLE_PEER, make)

    comparison = _comparison([recorder("a"), recorder("b"), recorder("c")])
    assert gc.isenabled()
    harness.measure(comparison, session, Settings(repeats=3, min_time=0.0))
    assert gc.isenabled()
    # a check run per contestant, then three rounds, each in a rotated order
    assert log[:3] == ["a", "b", "c"]
    assert log[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert gc_states[3:] == [False] * 9


def test_the_median_of_the_repeats_is_reported(
    monkeypatch: pytest.MonkeyPatch, session: Session
) -> None:
    now = [0.0]
    monkeypatch.setattr(harness, "_clock", lambda: now[0])
    durations = iter([0.5, 9.0, 1.0, 3.0, 2.0, 4.0])  # the check, then 5 repeats

    def make(w: DecodeWorkload, keep: bool) -> harness.Runner:
        def run() -> Optional[List[bytes]]:
            now[0] += next(durations)
            return list(w.payloads) if keep else len(w.payloads)

        return run

    contestant = Contestant("c", "c", harness.ROLE_PEER, make)
    (row,) = harness.measure(_comparison([contestant]), session, Settings(5, 0.0))
    assert row.runs == [9.0, 1.0, 3.0, 2.0, 4.0]
    assert row.seconds == 3.0
    assert row.frames_per_s == pytest.approx(300 / 3.0)
    assert row.spread == pytest.approx(4.0 / 3.0)


def test_ratios_are_to_the_python_row_and_the_floor(
    monkeypatch: pytest.MonkeyPatch, session: Session
) -> None:
    now = [0.0]
    monkeypatch.setattr(harness, "_clock", lambda: now[0])

    def taking(name: str, role: str, seconds: float) -> Contestant:
        def make(w: DecodeWorkload, keep: bool) -> harness.Runner:
            def run() -> Optional[List[bytes]]:
                now[0] += seconds
                return list(w.payloads) if keep else len(w.payloads)

            return run

        return Contestant(name, name, role, make)

    comparison = _comparison(
        [
            taking("fast", harness.ROLE_FRAMEKIT, 1.0),
            taking("python", harness.ROLE_PYTHON, 8.0),
            taking("floor-bytes", harness.ROLE_FLOOR, 0.5),
        ]
    )
    rows = harness.measure(comparison, session, Settings(3, 0.0))
    assert [(r.vs_python, r.vs_floor) for r in rows] == [(8.0, 0.5), (1.0, 1 / 16), (16.0, 1.0)]


def test_session_closes_its_resources() -> None:
    closed: List[str] = []

    class Resource:
        def __init__(self, name: str) -> None:
            self.name = name

        def close(self) -> None:
            closed.append(self.name)

    with Session(0.5) as s:
        first = s.resource("a", lambda: Resource("a"))
        assert s.resource("a", lambda: Resource("other")) is first
        s.resource("b", lambda: Resource("b"))
    assert closed == ["b", "a"]
    with pytest.raises(ValueError):
        Session(0)


# --- workloads and contestants ------------------------------------------------------


@pytest.mark.parametrize("size", [1, 16, 100, 4096])
def test_payloads_are_distinct_ascii_of_the_right_size(size: int) -> None:
    payloads = make_payloads(size, 300)
    assert all(len(p) == size for p in payloads)
    assert all(p.isalnum() for p in payloads)
    if size >= 8:
        assert len(set(payloads)) == 300


def test_every_catalogued_codec_contestant_passes_its_check(session: Session) -> None:
    """Every decode and encode contestant (and floor) is right, on a small workload."""
    small = Session(0.002)
    for comparison in catalogue.comparisons("all", "decode") + catalogue.comparisons(
        "all", "encode"
    ):
        if comparison.size > 4096:
            continue
        workload = comparison.build(small)
        for contestant in comparison.contestants:
            if harness.unavailable(contestant) is None:
                assert harness.check(contestant, workload) is None, (comparison.id, contestant)


def test_every_target_names_rows_that_are_catalogued() -> None:
    rows = {(c.id, x.name) for c in catalogue.comparisons("default") for x in c.contestants}
    quick = {(c.id, x.name) for c in catalogue.comparisons("quick") for x in c.contestants}
    for t in targets.TARGETS:
        assert {(t.comparison, t.subject), (t.comparison, t.reference)} <= rows, t
        if t.comparison.startswith(("lines-", "delimited-", "netstring-")):
            assert {(t.comparison, t.subject), (t.comparison, t.reference)} <= quick, t


def test_text_scenarios_decode_their_own_wire_format() -> None:
    small = Session(0.002)
    lines = next(c for c in catalogue.comparisons("quick") if c.id == "lines-64k-stream/16")
    workload = lines.build(small)
    assert workload.wire == b"".join(p + b"\n" for p in workload.payloads)
    names = {c.name for c in lines.contestants}
    assert {"cython", "python", "floor-split", "twisted"} <= names
    for comparison in catalogue.comparisons("default"):
        if comparison.id.startswith(("lines-", "delimited-", "netstring-")):
            workload = comparison.build(small)
            for contestant in comparison.contestants:
                if harness.unavailable(contestant) is None:
                    assert harness.check(contestant, workload) is None, contestant.name


def test_stream_runners_return_a_frame_count_that_is_verified(session: Session) -> None:
    """In "stream" mode every contestant's timed runner returns its frame count."""
    small = Session(0.002)
    for comparison in catalogue.comparisons("all", "decode"):
        if comparison.size > 4096 or comparison.scenario.keep:
            continue
        workload = comparison.build(small)
        for contestant in comparison.contestants:
            if harness.unavailable(contestant) is None:
                output = contestant.make(workload, False)()
                assert output == workload.frames, (comparison.id, contestant.name, output)
                assert workload.verify(output) is None


def test_a_stream_runner_that_loses_frames_is_an_error_while_timed(session: Session) -> None:
    def make(w: DecodeWorkload, keep: bool) -> harness.Runner:
        def run() -> Any:
            frames = NaiveDecoder().feed(w.wire)
            return frames if keep else len(frames) - 1  # right only when kept

        return run

    def make_silent(w: DecodeWorkload, keep: bool) -> harness.Runner:
        return lambda: list(w.payloads) if keep else None  # nothing to check

    lossy = Contestant("lossy", "lossy", harness.ROLE_PEER, make)
    silent = Contestant("silent", "silent", harness.ROLE_PEER, make_silent)
    rows = harness.measure(_comparison([lossy, silent]), session, Settings(1, 0.0))
    assert [r.status for r in rows] == ["error", "error"]
    assert "299 frames instead of 300" in rows[0].note
    assert "no output" in rows[1].note


def test_workload_verification_catches_each_kind_of_mistake() -> None:
    w = DecodeWorkload(16, 10, CHUNK_7, False)
    assert w.verify(list(w.payloads)) is None
    assert "no output" in (w.verify(None) or "")  # a run that returns nothing is not right
    assert w.verify(w.frames) is None  # a "stream" run's frame count
    assert "9 frames instead of 10" in (w.verify(9) or "")
    assert "9 frames" in (w.verify(w.payloads[:-1]) or "")
    assert "frame 3 differs" in (w.verify([*w.payloads[:3], b"x" * 16, *w.payloads[4:]]) or "")
    assert "bytearray" in (w.verify([bytearray(p) for p in w.payloads]) or "")
    assert w.verify(bytearray(w.wire)) is None
    assert w.verify(w.wire[:-1]) is not None
    assert all(len(c) == 7 for c in w.chunks[:-1]) and b"".join(w.chunks) == w.wire
    e = EncodeWorkload(16, 3, "encode_many")
    assert e.verify(e.wire) is None
    assert e.verify([e.wire]) is not None
    h = EncodeWorkload(16, 3, "header")
    assert h.expected == [b"\0\0\0\x10"] * 3


@pytest.mark.network
def test_end_to_end_receivers_get_every_frame(session: Session) -> None:
    """Through the sender process, over TCP and a Unix socket: every receiver is right."""
    tiny = Session(0.01)
    try:
        for comparison in catalogue.comparisons("default", "e2e"):
            rows = harness.measure(comparison, tiny, Settings(1, 0.0))
            for row in rows:
                assert row.status in ("ok", "skipped"), (row.comparison, row.label, row.note)
            assert {"naive", "readexactly", "raw-recv-into"} <= {r.contestant for r in rows if r.ok}
        w = EndToEndWorkload(tiny, "tcp", 64, 1 << 20)
        assert w.verify(w.frames) is None
        assert w.verify(w.frames - 1) is not None
        assert w.verify(None) is not None
        assert w.verify(w.payloads * w.repeats) is None
        assert w.verify(w.payloads[::-1] * w.repeats) is not None
        assert w.verify(w.buffer * w.repeats) is None
        assert w.verify(w.buffer * w.repeats + b"x") is not None
    finally:
        tiny.close()


def test_select_filters_contestants_by_id() -> None:
    everything = catalogue.comparisons("default")
    only = catalogue.select(everything, ["decode-64k-stream/16/"])
    assert [c.id for c in only] == ["decode-64k-stream/16"]
    assert len(only[0].contestants) == len(everything[0].contestants)
    msgpack = catalogue.select(everything, ["*/msgpack"])
    assert msgpack and all([x.name for x in c.contestants] == ["msgpack"] for c in msgpack)
    none = catalogue.select(everything, ["decode-64k-stream/16/"], ["decode"])
    assert none == []
    with pytest.raises(ValueError):
        catalogue.comparisons("nope")


# --- targets and reports ----------------------------------------------------------------


def _row(comparison: str, contestant: str, seconds: float, status: str = "ok") -> Result:
    scenario, size = comparison.rsplit("/", 1)
    return Result(
        comparison=comparison,
        scenario=scenario,
        title=scenario,
        size=int(size),
        contestant=contestant,
        label=contestant.upper(),
        role=harness.ROLE_PEER,
        status=status,
        frames=1000,
        payload_bytes=16000,
        seconds=seconds,
        runs=[seconds],
    )


def test_targets_are_reported_met_missed_or_not_measured() -> None:
    rows = [
        _row("decode-64k-stream/16", "cython", 1.0),
        _row("decode-64k-stream/16", "msgpack", 2.0),
        _row("decode-64k-stream/16", "python", 5.0),
        _row("decode-7b-stream/16", "cython", 1.0),
        _row("decode-7b-stream/16", "hiredis", 1.0, status="skipped"),
    ]
    verdicts = targets.evaluate(rows)
    assert [(v.target.reference, v.status) for v in verdicts] == [
        ("msgpack", "met"),
        ("python", "missed"),
        ("hiredis", "not measured"),
    ]
    assert [v.number for v in verdicts] == [1, 2, 5]  # places in TARGETS, whatever ran
    assert verdicts[0].ratio == 2.0
    assert "CYTHON >= 1.3x MSGPACK" in verdicts[0].text


def test_table_and_markdown_show_ratios_targets_and_what_was_not_timed() -> None:
    rows = [
        _row("decode-64k-stream/16", "cython", 1.0),
        _row("decode-64k-stream/16", "msgpack", 2.0),
        _row("decode-64k-stream/16", "python", 5.0),
        _row("decode-64k-stream/16", "wrong", float("nan"), status="failed"),
        _row("decode-64k-stream/16", "hiredis", float("nan"), status="skipped"),
    ]
    rows[2].role = harness.ROLE_PYTHON
    rows[0].vs_python = 5.0
    rows[3].note = "wrong output, not timed: 3 frames instead of 4"
    rows[4].note = "hiredis is not available"
    verdicts = targets.evaluate(rows)
    table = report.format_table(rows, verdicts)
    assert "1k" in table and "5x" in table
    assert "T1 met, T2 MISSED" in table
    assert "WRONG OUTPUT" in table and "3 frames instead of 4" in table
    assert "HIREDIS: hiredis is not available" in table
    markdown = report.markdown_table(rows, verdicts)
    assert "throughput relative to PYTHON" in markdown
    assert "| CYTHON | 5x |" in markdown and "| WRONG | wrong |" in markdown
    assert "HIREDIS" not in markdown
    assert "T2 **missed**" in markdown
    assert report.format_rate(float("nan")) == "-"
    assert [report.format_rate(x) for x in (8.0, 4.12e5, 3.53e7, 9.49e9)] == [
        "8",
        "412k",
        "35.3M",
        "9.49G",
    ]
    assert size_label(1 << 20) == "1 MiB"


# --- framekit bench ----------------------------------------------------------------


def test_framekit_bench_writes_table_json_and_markdown(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    status = cli.main(
        [
            "bench",
            "--filter",
            "decode-64k-stream/16/",
            "--filter",
            "decode-7b-stream/16/",
            "--json",
            str(out),
            "--markdown",
            str(md),
            *TINY,
        ]
    )
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "decode, 64 KiB feeds, stream" in captured.out
    assert "framekit (python)" in captured.out and "floor: memcpy" in captured.out
    assert "T2 [" in captured.out  # the targets of those rows are reported
    data: Dict[str, Any] = json.loads(out.read_text())
    assert data["machine"]["cpu_count"] == os.cpu_count()
    assert data["versions"]["framekit"] and data["versions"]["framekit_backend"]
    assert data["settings"]["repeats"] == 1
    contestants = {r["contestant"] for r in data["results"] if r["status"] == "ok"}
    assert {"python", "naive", "floor-bytes", "floor-memcpy"} <= contestants
    assert all(r["frames_per_s"] > 0 for r in data["results"] if r["status"] == "ok")
    assert {t["comparison"] for t in data["targets"]} == {
        "decode-64k-stream/16",
        "decode-7b-stream/16",
    }
    assert "**decode, 64 KiB feeds, stream**: throughput relative to framekit (python)" in (
        md.read_text()
    )


def test_framekit_bench_shows_progress_and_draws_the_chart(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "chart.png"
    args = ["bench", "--quick", "--filter", "decode-64k", "--plot", str(png), *TINY[:-1]]
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "framekit bench (quick): 3 comparisons" in err
    assert "[3/3] decode, 64 KiB feeds, stream · 1 MiB ... " in err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_framekit_bench_without_matplotlib_says_so_before_running(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    status = cli.main(["bench", "--plot", str(tmp_path / "x.png"), *TINY[:-1]])
    err = capsys.readouterr().err
    assert status != 0
    assert err.strip().splitlines() == [f"framekit bench: error: {report.PLOT_MISSING}"]
    assert not (tmp_path / "x.png").exists()


def test_framekit_bench_list_and_empty_filter(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "--quick", "--list"]) == 0
    ids = capsys.readouterr().out.split()
    assert "decode-64k-stream/16/cython" in ids and "e2e-tcp/65536/raw-recv-into" in ids
    assert cli.main(["bench", "--filter", "no-such-thing", "-q"]) == 1
    assert "no contestant matches" in capsys.readouterr().err


def test_framekit_bench_fails_when_a_contestant_is_wrong(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: List[bool] = []
    wrong = _dropping_one(calls)
    real = catalogue.comparisons

    def with_wrong(profile: str = "default", kind: Optional[str] = None) -> List[Comparison]:
        return [
            Comparison(c.scenario, c.size, (*c.contestants, wrong), c.build, c.floor)
            for c in real(profile, kind)
        ]

    monkeypatch.setattr(catalogue, "comparisons", with_wrong)
    status = cli.main(["bench", "--quick", "--filter", "decode-64k-stream/16/", *TINY[:-1]])
    captured = capsys.readouterr()
    assert status == 1
    assert "fast but wrong: failed: wrong output, not timed" in captured.err
    assert "WRONG OUTPUT" in captured.out
    assert calls == [True]


# --- the pytest-benchmark suite ---------------------------------------------------------


def test_the_bench_suite_runs_in_smoke_mode() -> None:
    """CI's proof that ``pytest bench/`` works: each benchmark runs once, checked, tiny."""
    pytest.importorskip("pytest_benchmark")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "bench", "-q", "-x", "-p", "no:cacheprovider", *SMOKE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout

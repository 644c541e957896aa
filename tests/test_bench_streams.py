"""The benchmarks of frames too large to hold (``framekit.apps.benchmarks.streams``): every
row is checked by the sha256 of what came through before it is timed, and a row that loses,
adds or changes a byte is never timed.  No speed is asserted (see tests/test_bench.py)."""

from __future__ import annotations

from typing import Any, Iterator, List

import pytest

from framekit.apps.benchmarks import catalogue, harness, report, targets
from framekit.apps.benchmarks.harness import Comparison, Contestant, Session, Settings
from framekit.apps.benchmarks.streams import (
    BIG_FRAME,
    Received,
    SendFileWorkload,
    StreamWorkload,
    send_file_contestants,
    stream_contestants,
)
from framekit.apps.benchmarks.workloads import size_label, stream_chunks, stream_digest

pytestmark = pytest.mark.network

#: About 2 MiB per frame: every row runs in milliseconds.
TINY = 0.002


@pytest.fixture
def tiny() -> Iterator[Session]:
    with Session(TINY) as session:
        yield session


def _length(session: Session) -> int:
    return int(BIG_FRAME * session.scale)


def _check_run(contestant: Contestant, workload: Any) -> Any:
    """One check run of ``contestant`` (hooks included), and its output."""
    run = contestant.make(workload, True)
    run.before()  # type: ignore[attr-defined]
    try:
        output = run()
    finally:
        run.after()  # type: ignore[attr-defined]
    return output


def test_the_streamed_payload_is_made_as_it_goes_and_has_no_period_a_read_lines_up_with() -> None:
    chunks = list(stream_chunks(3 << 20))
    assert sum(map(len, chunks)) == 3 << 20
    assert all(len(c) % 4096 for c in chunks[:-1])  # 1 MiB + 7: never a page or a read
    assert stream_digest(100) != stream_digest(101)
    assert size_label(BIG_FRAME) == "1 GiB"


@pytest.mark.parametrize("contestant", stream_contestants(), ids=lambda c: c.name)
def test_every_receiver_hashes_what_came_in_its_check_run(
    contestant: Contestant, tiny: Session
) -> None:
    reason = harness.unavailable(contestant)
    if reason is not None:
        pytest.skip(reason)
    w = StreamWorkload(tiny, "tcp", _length(tiny))
    output = _check_run(contestant, w)
    assert isinstance(output, Received)
    assert output.sha256 == w.sha256  # the check compares the sha256, not only a count
    assert w.verify(output) is None
    timed = contestant.make(w, False)
    timed.before()  # type: ignore[attr-defined]
    out = timed()
    timed.after()  # type: ignore[attr-defined]
    assert out == Received(w.length)  # timed runs count


@pytest.mark.parametrize("contestant", send_file_contestants(), ids=lambda c: c.name)
def test_every_file_sender_is_checked_by_the_drains_sha256_and_header(
    contestant: Contestant, tiny: Session
) -> None:
    reason = harness.unavailable(contestant)
    if reason is not None:
        pytest.skip(reason)
    w = SendFileWorkload(tiny, "tcp", _length(tiny))
    output = _check_run(contestant, w)
    assert isinstance(output, Received)
    assert output.sha256 == w.sha256
    assert output.head == w.header.hex()
    assert w.verify(output) is None


def test_a_byte_lost_added_or_changed_fails_the_check(tiny: Session) -> None:
    w = StreamWorkload(tiny, "tcp", _length(tiny))
    assert w.verify(Received(w.length)) is None
    assert w.verify(Received(w.length, w.sha256)) is None
    assert "payload bytes" in str(w.verify(Received(w.length - 1)))
    assert "payload bytes" in str(w.verify(Received(w.length + 1, w.sha256)))
    assert "sha256" in str(w.verify(Received(w.length, stream_digest(w.length - 1))))
    assert "header" in str(w.verify(Received(w.length, w.sha256, "00000000")))
    assert "Received" in str(w.verify(w.length))


def test_a_receiver_that_drops_bytes_is_never_timed(tiny: Session) -> None:
    raw = next(c for c in stream_contestants() if c.name == "raw-recv-into")
    calls: List[bool] = []

    def make(w: StreamWorkload, keep: bool) -> Any:
        calls.append(keep)
        run = raw.make(w, keep)
        inner = run._receive  # type: ignore[attr-defined]

        def lossy() -> Received:
            got = inner()
            return Received(got.nbytes - 1, got.sha256)

        run._receive = lossy  # type: ignore[attr-defined]
        return run

    def build(session: Session) -> StreamWorkload:
        return StreamWorkload(session, "tcp", _length(session))

    lossy = Contestant("lossy", "drops the last byte", harness.ROLE_PEER, make)
    scenario = harness.Scenario("stream-test", "stream test", "stream")
    comparison = Comparison(scenario, BIG_FRAME, (lossy, raw), build, raw.name)
    rows = {r.contestant: r for r in harness.measure(comparison, tiny, Settings(2, 0.0))}
    assert rows["lossy"].status == "failed" and calls == [True]
    assert "payload bytes" in rows["lossy"].note
    assert rows["raw-recv-into"].ok and rows["raw-recv-into"].vs_floor == 1.0


def test_the_targets_rows_run_in_every_profile_and_report_as_end_to_end(tiny: Session) -> None:
    big = [t for t in targets.TARGETS if t.comparison.endswith(f"/{BIG_FRAME}")]
    assert len(big) == 8
    for profile in catalogue.PROFILES:
        rows = {(c.id, x.name) for c in catalogue.comparisons(profile) for x in c.contestants}
        for t in big:
            assert {(t.comparison, t.subject), (t.comparison, t.reference)} <= rows, (profile, t)
    every = catalogue.comparisons("default", "stream")
    chosen = catalogue.select(every, ["*/raw-recv-into", "*/send-file", "*/raw-sendfile"])
    results = [r for c in chosen for r in harness.measure(c, tiny, Settings(1, 0.0))]
    assert {r.status for r in results} == {"ok"}, [(r.contestant, r.note) for r in results]
    markdown = report.markdown_table(results, targets.evaluate(results))
    assert "throughput relative to raw recv_into (no framing)" in markdown
    assert "| framekit blocking send_file |" in markdown

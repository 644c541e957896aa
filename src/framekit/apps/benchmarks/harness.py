"""The timing harness: check every contestant, then time them side by side.

Design notes
------------
A :class:`Comparison` is a set of contestants run on one workload (the very
same bytes).  Ratios are only ever taken between rows of one comparison,
measured in the same run, so the speed of the machine cancels out and what is
left is how the contestants compare.

For each comparison :func:`measure`:

1. builds the workload (untimed);
2. **checks** every contestant: it runs once keeping its output, which must
   equal the expected frames.  A contestant that is wrong (or raises) is never
   timed, so a wrong fast answer cannot win.  The check also warms caches and
   the allocator;
3. **calibrates**: how many calls a repeat needs to last ``min_time`` (so
   timer resolution and loop overhead vanish), from one timed call; a check
   run that already took ``min_time`` says one call, without that extra call;
4. **repeats**: ``repeats`` rounds, and in each round every contestant is timed
   once, in an order rotated by one per round, so slow drift (CPU frequency,
   a noisy neighbour, a growing heap) does not always hit the same contestant.
   The garbage collector is collected before and disabled during each timed
   repeat.  The output of each repeat's last call is verified again, outside
   the timer.  The result is the **median** over repeats.

A runner is a callable that does one run and returns its output: the frames,
or, when the scenario drops them ("stream"), how many there were, so that the
timed runs are verified too (a runner that returns ``None`` fails its check).
A runner may also have ``before()`` and ``after()`` hooks, called outside the
timer around each call (the end-to-end runners arm the sender process and wait
for its acknowledgement there); such a runner is timed one call at a time.

A runner that times itself returns a :class:`SelfTimed`: the server benchmark's
load generator, in another process, is the one that knows when frames came
back.  Its workload has ``frames == 1``, and a repeat's time is the run's
seconds per frame, so medians, spreads and ratios work as for every other row;
the run's own measurements (latency percentiles) go to the row's ``metrics``,
each the median over the repeats.
**Ctrl-C** stops a run for good.  ``KeyboardInterrupt`` is never caught as a
contestant's failure (only ``Exception`` is), and when it comes during a
hooked call, ``after()`` is *not* called: waiting for an acknowledgement that
the interrupted run will never earn could hang, and an error it raised would
replace the interrupt and be reported as a wrong output.  ``abort()``, if the
runner has it, cleans up without waiting.  :meth:`Session.close` then closes
the resources, hard (``abort()``) when the session ends with an exception.

A ``KeyboardInterrupt`` can also be raised where Python swallows it: in a
``__del__`` (an asyncio transport collected mid-run) or an event loop's
callback (uvloop logs it).  So while a :class:`Session` is open, SIGINT sets a
flag (:func:`interrupted`); while an event loop runs a contestant, it calls
that run's :func:`on_interrupt` callback (which cancels the run) instead of
raising inside the loop; an interrupt swallowed anyway is not printed; and
every call checks the flag when it returns: the run stops there at the latest.

Nothing here knows what a codec is: contestants and workloads come from
:mod:`framekit.apps.benchmarks.catalogue`.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import math
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Protocol, Tuple, TypeVar

from .workloads import size_label

__all__ = [
    "ROLE_FLOOR",
    "ROLE_FRAMEKIT",
    "ROLE_PEER",
    "ROLE_PYTHON",
    "Comparison",
    "Contestant",
    "Result",
    "Runner",
    "Scenario",
    "SelfTimed",
    "Session",
    "Settings",
    "WorkloadLike",
    "check",
    "interrupted",
    "measure",
    "on_interrupt",
    "unavailable",
]

#: framekit itself with the compiled codec (and its transports).
ROLE_FRAMEKIT = "framekit"
#: framekit's pure-Python reference backend: the "vs python" column.
ROLE_PYTHON = "python"
#: what users already use.
ROLE_PEER = "peer"
#: a lower bound on the work (no framing at all): the "vs floor" column.
ROLE_FLOOR = "floor"

T = TypeVar("T")

#: Set by SIGINT while a session is open (see the module notes).
_interrupt_flag = threading.Event()


#: What SIGINT does instead of raising, innermost last (see :func:`on_interrupt`).
_interrupt_callbacks: List[Callable[[], Any]] = []


@contextlib.contextmanager
def on_interrupt(callback: Callable[[], Any]) -> Iterator[None]:
    """While in the block, SIGINT calls ``callback()`` rather than raising.

    For code that must not get ``KeyboardInterrupt`` at a random point (an
    event loop's callbacks); it must stop by itself once called, and then
    check :func:`interrupted`.  Only in effect while a :class:`Session` is open.
    """
    _interrupt_callbacks.append(callback)
    try:
        yield
    finally:
        _interrupt_callbacks.remove(callback)


def interrupted() -> bool:
    """Whether Ctrl-C came since the session opened."""
    return _interrupt_flag.is_set()


def _stop_if_interrupted() -> None:
    if _interrupt_flag.is_set():
        raise KeyboardInterrupt


def _on_sigint(signum: int, frame: Any) -> None:
    _interrupt_flag.set()
    if _interrupt_callbacks:
        _interrupt_callbacks[-1]()
        return
    raise KeyboardInterrupt


def _unraisable(previous: Callable[[Any], None]) -> Callable[[Any], None]:
    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _interrupt_flag.set()  # swallowed where it was raised; acted on at the next check
            return
        previous(unraisable)

    return hook


Runner = Callable[[], Any]

#: The timer (a module attribute so that tests can substitute a fake clock).
_clock: Callable[[], float] = time.perf_counter


class WorkloadLike(Protocol):
    """What the harness needs of a workload."""

    frames: int
    payload_bytes: int

    def verify(self, output: Any) -> Optional[str]: ...


@dataclass(frozen=True)
class Contestant:
    """One way of doing the job.

    Attributes:
        name: short id, used by ``--filter`` and in the JSON (``cython``, ``msgpack``).
        label: what the table and the chart show.
        role: one of the ``ROLE_*`` constants.
        make: ``make(workload, keep)`` builds a runner (untimed); with ``keep``
            the runner returns its frames, else it may drop them.
        needs: importable things it requires, ``"module"`` or ``"module:attr"``;
            when one is missing the contestant is skipped with a note.
        available: for what ``needs`` cannot say (a program, a file):
            ``available()`` returns why the contestant cannot run, or ``None``.
    """

    name: str
    label: str
    role: str
    make: Callable[[Any, bool], Runner]
    needs: Tuple[str, ...] = ()
    available: Optional[Callable[[], Optional[str]]] = None


@dataclass(frozen=True)
class Scenario:
    """What is measured, for every payload size: e.g. decode, 64 KiB feeds, stream.

    Attributes:
        key: short id (``decode-64k-stream``).
        title: human title (``decode, 64 KiB feeds, stream``).
        kind: ``decode``, ``encode``, ``e2e``, ``stream`` (frames too large to hold) or
            ``server``.
        keep: whether runs keep every frame ("list") or drop them ("stream").
    """

    key: str
    title: str
    kind: str
    keep: bool = False


@dataclass(frozen=True)
class Comparison:
    """Contestants measured side by side on one workload.

    Attributes:
        scenario: what is measured.
        size: payload size in bytes.
        contestants: in their display order.
        build: ``build(session)`` makes the workload.
        floor: name of the contestant the "vs floor" column divides by.
        reference: name of another contestant every row is compared with
            (the server benchmark's Netty), if any.
        repeats: timed repeats, instead of the settings' (runs that last
            seconds each need fewer).
    """

    scenario: Scenario
    size: int
    contestants: Tuple[Contestant, ...]
    build: Callable[[Session], Any]
    floor: Optional[str] = None
    reference: Optional[str] = None
    repeats: Optional[int] = None

    @property
    def id(self) -> str:
        return f"{self.scenario.key}/{self.size}"

    @property
    def title(self) -> str:
        return f"{self.scenario.title} · {size_label(self.size)}"


@dataclass(frozen=True)
class Settings:
    """How long to measure.

    Attributes:
        repeats: timed repeats per contestant; the result is their median.
        min_time: seconds a repeat should last at least (0: one call).
    """

    repeats: int = 5
    min_time: float = 0.02


class Session:
    """Shared state for one benchmark run: the workload scale and lazily started resources.

    Use it as a context manager: resources (the sender process of the
    end-to-end comparisons) are closed on exit.

    Args:
        scale: multiplies every workload's byte budget (and the server
            benchmark's run lengths).
        options: settings particular to some workloads (``server_duration``,
            ``server_warmup``: see :mod:`.catalogue`).
    """

    def __init__(self, scale: float = 1.0, **options: Any) -> None:
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.scale = scale
        self.options: Dict[str, Any] = options
        self._resources: Dict[str, Any] = {}
        self._restore: List[Callable[[], None]] = []

    def resource(self, key: str, factory: Callable[[], T]) -> T:
        """Return the resource ``key``, made by ``factory()`` on first use.

        The resource is closed (``close()``) when the session is.
        """
        if key not in self._resources:
            self._resources[key] = factory()
        return self._resources[key]  # type: ignore[no-any-return]

    def close(self, *, abort: bool = False) -> None:
        """Close every resource, newest first.

        Args:
            abort: the run was interrupted: stop each resource at once
                (its ``abort()`` when it has one) rather than politely.
        """
        while self._resources:
            _, res = self._resources.popitem()
            stop = getattr(res, "abort", None) if abort else None
            (stop or res.close)()

    def __enter__(self) -> Session:
        _interrupt_flag.clear()
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is signal.default_int_handler:  # not ignored, not someone else's
                signal.signal(signal.SIGINT, _on_sigint)

                def restore() -> None:
                    signal.signal(signal.SIGINT, previous)

                self._restore.append(restore)
            hook = sys.unraisablehook
            sys.unraisablehook = _unraisable(hook)
            self._restore.append(lambda: setattr(sys, "unraisablehook", hook))
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            self.close(abort=exc_type is not None or interrupted())
        finally:
            while self._restore:
                self._restore.pop()()


@dataclass(frozen=True)
class SelfTimed:
    """What a self-timed run returns: it measured ``frames`` in ``seconds`` itself.

    Attributes:
        frames: frames the run completed in its measured time.
        seconds: that time.
        metrics: its other measurements (``p50_us``...), reported as medians.
        detail: anything the workload's ``verify`` needs.
    """

    frames: int
    seconds: float
    metrics: Dict[str, float] = field(default_factory=dict)
    detail: Any = None

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds / self.frames if self.frames > 0 else math.inf


@dataclass
class Result:
    """One contestant's row.

    Attributes:
        status: ``ok``, ``skipped`` (not installed), ``failed`` (wrong output:
            never timed) or ``error`` (raised while timed).
        seconds: median seconds per run (``nan`` unless ``ok``).
        runs: seconds per run of each repeat.
        number: runs per repeat.
        vs_python, vs_floor: throughput ratio to the pure-Python backend and
            to the floor of the same comparison (``None`` if either is absent).
        floor: the label of that floor.
        vs_reference, reference: the throughput ratio to the comparison's
            reference row (Netty in the server benchmark), and its label.
        metrics: a self-timed row's own measurements, medians over its repeats.
    """

    comparison: str
    scenario: str
    title: str
    size: int
    contestant: str
    label: str
    role: str
    status: str = "ok"
    note: str = ""
    frames: int = 0
    payload_bytes: int = 0
    seconds: float = math.nan
    runs: List[float] = field(default_factory=list)
    number: int = 0
    vs_python: Optional[float] = None
    vs_floor: Optional[float] = None
    floor: Optional[str] = None
    vs_reference: Optional[float] = None
    reference: Optional[str] = None
    metrics: Dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.ok and self.seconds > 0 else math.nan

    @property
    def mb_per_s(self) -> float:
        return self.payload_bytes / self.seconds / 1e6 if self.ok and self.seconds > 0 else math.nan

    @property
    def spread(self) -> float:
        """Half the range of the repeats, relative to the median."""
        if not self.ok or len(self.runs) < 2:
            return math.nan
        return (max(self.runs) - min(self.runs)) / 2 / self.seconds

    def as_dict(self) -> Dict[str, Any]:
        """The row as JSON-ready data, with the derived rates."""
        data = dict(self.__dict__)
        data["frames_per_s"] = None if math.isnan(self.frames_per_s) else self.frames_per_s
        data["mb_per_s"] = None if math.isnan(self.mb_per_s) else self.mb_per_s
        data["seconds"] = None if math.isnan(self.seconds) else self.seconds
        return data


_availability: Dict[str, Optional[str]] = {}


def unavailable(contestant: Contestant) -> Optional[str]:
    """Why the contestant cannot run here (a missing module), or ``None`` if it can."""
    for need in contestant.needs:
        if need not in _availability:
            module_name, _, attr = need.partition(":")
            try:
                module = importlib.import_module(module_name)
                if attr:
                    getattr(module, attr)
            except (ImportError, AttributeError) as exc:
                _availability[need] = f"{need.replace(':', '.')} is not available ({exc})"
            else:
                _availability[need] = None
        reason = _availability[need]
        if reason is not None:
            return reason
    if contestant.available is not None:
        return contestant.available()
    return None


def _call(run: Runner) -> Tuple[float, Any]:
    """One hooked call: ``before()``, the timed call, ``after()``."""
    before = getattr(run, "before", None)
    after = getattr(run, "after", None)
    _stop_if_interrupted()
    if before is not None:
        before()
    start = _clock()
    try:
        output = run()
        elapsed = _clock() - start
        _stop_if_interrupted()
    except Exception:
        _stop_if_interrupted()  # an error caused by the interrupt is no error
        if after is not None:
            after()
        raise
    except BaseException:  # Ctrl-C: no after(), see the module notes
        abort = getattr(run, "abort", None)
        if abort is not None:
            try:
                abort()
            except Exception:  # nothing may replace the interrupt
                pass
        raise
    if after is not None:
        after()
    _stop_if_interrupted()
    return elapsed, output


def _time(run: Runner, number: int) -> Tuple[float, Any]:
    """Seconds per call over ``number`` calls, gc off; and the last call's output."""
    hooked = hasattr(run, "before") or hasattr(run, "after")
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        if hooked:
            return _call(run)
        output = None
        start = _clock()
        for _ in range(number):
            output = run()
        elapsed = (_clock() - start) / number
        _stop_if_interrupted()
        return elapsed, output
    finally:
        if was_enabled:
            gc.enable()


def check(contestant: Contestant, workload: WorkloadLike) -> Optional[str]:
    """Run the contestant once, keeping its frames, and verify them.

    Returns:
        ``None`` if the output is right, else what went wrong (a wrong output
        or an exception).
    """
    return _check(contestant, workload)[0]


def _check(contestant: Contestant, workload: WorkloadLike) -> Tuple[Optional[str], float]:
    """:func:`check`, and how long the checked call took (setup not included)."""
    try:
        elapsed, output = _call(contestant.make(workload, True))
        return workload.verify(output), elapsed
    except Exception as exc:
        return f"raised {type(exc).__name__}: {exc}", 0.0


def _rotated(items: List[T], shift: int) -> List[T]:
    if not items:
        return items
    shift %= len(items)
    return items[shift:] + items[:shift]


def measure(comparison: Comparison, session: Session, settings: Settings) -> List[Result]:
    """Check, calibrate and time every contestant of ``comparison``.

    Returns:
        One :class:`Result` per contestant, in the comparison's order, with
        the ratios to the Python backend and to the floor filled in.

    Raises:
        Exception: whatever building the workload raised (a sender process
            that did not start, for instance).
    """
    workload = comparison.build(session)
    keep = comparison.scenario.keep
    repeats = comparison.repeats if comparison.repeats is not None else settings.repeats
    results: Dict[str, Result] = {}
    metric_runs: Dict[str, List[Dict[str, float]]] = {}
    runners: Dict[str, Tuple[Runner, int]] = {}
    for c in comparison.contestants:
        res = Result(
            comparison=comparison.id,
            scenario=comparison.scenario.key,
            title=comparison.scenario.title,
            size=comparison.size,
            contestant=c.name,
            label=c.label,
            role=c.role,
            frames=workload.frames,
            payload_bytes=workload.payload_bytes,
        )
        results[c.name] = res
        reason = unavailable(c)
        if reason is not None:
            res.status, res.note = "skipped", reason
            continue
        wrong, checked = _check(c, workload)
        if wrong is not None:
            res.status, res.note = "failed", f"wrong output, not timed: {wrong}"
            continue
        try:
            run = c.make(workload, keep)
            hooked = hasattr(run, "before") or hasattr(run, "after")
            number = 1
            if not hooked and checked < settings.min_time:
                # The check run was short: time the real runner to see how
                # many calls fill ``min_time``.  (A long check run says one
                # call is enough, and a second one would only cost time.)
                first, _ = _time(run, 1)
                number = max(1, math.ceil(settings.min_time / max(first, 1e-9)))
        except Exception as exc:
            res.status, res.note = "error", f"raised {type(exc).__name__}: {exc}"
            continue
        res.number = number
        runners[c.name] = (run, number)

    order = list(runners)
    for round_ in range(max(1, repeats)):
        for name in _rotated(order, round_):
            if name not in runners:
                continue
            run, number = runners[name]
            res = results[name]
            try:
                seconds, output = _time(run, number)
                wrong = workload.verify(output)
            except Exception as exc:
                wrong = f"raised {type(exc).__name__}: {exc}"
            if wrong is not None:
                res.status, res.note = "error", f"while timed: {wrong}"
                res.runs.clear()
                del runners[name]
                continue
            if isinstance(output, SelfTimed):
                seconds = output.seconds_per_frame
                metric_runs.setdefault(name, []).append(output.metrics)
            res.runs.append(seconds)

    for res in results.values():
        if res.ok:
            res.seconds = statistics.median(res.runs) if res.runs else math.nan
            if not res.runs:
                res.status = "error"
            runs = metric_runs.get(res.contestant, [])
            for key in sorted({k for m in runs for k in m}):
                values = [m[key] for m in runs if key in m and not math.isnan(m[key])]
                if values:
                    res.metrics[key] = statistics.median(values)
    _fill_ratios(comparison, list(results.values()))
    return list(results.values())


def _fill_ratios(comparison: Comparison, results: List[Result]) -> None:
    python = next((r for r in results if r.role == ROLE_PYTHON and r.ok), None)
    floor = next((r for r in results if r.contestant == comparison.floor and r.ok), None)
    ref = next((r for r in results if r.contestant == comparison.reference and r.ok), None)
    for r in results:
        if floor is not None:
            r.floor = floor.label
        if ref is not None:
            r.reference = ref.label
        if not r.ok:
            continue
        if python is not None:
            r.vs_python = python.seconds / r.seconds
        if floor is not None:
            r.vs_floor = floor.seconds / r.seconds
        if ref is not None:
            r.vs_reference = ref.seconds / r.seconds

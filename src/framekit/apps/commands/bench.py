"""``framekit bench``: framekit against its pure-Python backend, the usual alternatives, the floors.

Design notes
------------
This is the main job a new user runs, so it must work from a plain install
(no pytest), finish in a couple of minutes (``--quick``: well under one), and
say what it is doing: one progress line per comparison on stderr, the table
on stdout.  The server benchmark (its runs last seconds each, whatever the
machine) adds about a minute; ``--exclude server`` leaves it out, and
``--server-time`` sets its run length.

It runs the ``default`` profile of :mod:`framekit.apps.benchmarks.catalogue` (a
representative subset; ``--full`` is the whole matrix of ``pytest bench/``,
``--quick`` only the rows the targets are about) through
:mod:`framekit.apps.benchmarks.harness`, which checks every contestant's output
before timing it, rotates the order of the contestants between repeats, takes
the median, and keeps the garbage collector off while timing.

Missing optional peers (the ``bench`` extra) are skipped with a note.  A
missing matplotlib with ``--plot`` is an error *before* anything runs, rather
than a minute later.

**Exit status** (:data:`EXIT_STATUS`, also in ``--help``): 1 when a
contestant produced a wrong output or failed, so a broken build cannot hide
behind a table of numbers; a missed speed target is reported, and is an error
(status 3) only with ``--check``, because a target is a ratio measured on
whatever else the machine is doing: on a shared machine a miss is often noise,
and the output says so when one happens.  Ctrl-C stops the run at once (status
130), with no table: an interrupted row is not a wrong one.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import time
from typing import Any, Dict, List, Optional, TextIO

from ..benchmarks import catalogue, harness, report, targets
from ..errors import CommandError

__all__ = ["EXIT_MISSED", "EXIT_STATUS", "MISSED_NOTE", "add_arguments", "run"]

#: Exit status of ``--check`` when a target was missed.
EXIT_MISSED = 3

EXIT_STATUS = (
    "exit status: 0 when every contestant's output was right; 1 when one was wrong or "
    f"failed; {EXIT_MISSED} with --check when a speed target was missed (without --check a miss "
    "is only reported); 130 after Ctrl-C"
)

#: Printed under the targets when one was missed.
MISSED_NOTE = (
    "MISSED means that in this run the ratio fell below the target.  Both rows of a\n"
    "ratio were measured side by side, so a slow machine does not cause a miss, but a\n"
    "busy or shared one can: end-to-end rows swing by +-30% between runs on a shared\n"
    "2-core VM (the sender needs a core of its own; see each row's +- column).  Run\n"
    "again, or that row alone with more repeats (--filter ROW --repeats 15), before\n"
    f"concluding.  A miss changes the exit status only with --check (status {EXIT_MISSED})."
)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``bench`` options to its parser."""
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        action="store_true",
        help="only the rows the speed targets are about, shorter (under a minute)",
    )
    size.add_argument(
        "--full",
        action="store_true",
        help="every scenario at every size, as pytest bench/ runs them (several minutes)",
    )
    parser.add_argument(
        "--json", metavar="FILE", help="write the raw results, machine and versions"
    )
    parser.add_argument(
        "--plot", metavar="FILE.png", help="draw throughput against payload size (needs matplotlib)"
    )
    parser.add_argument("--markdown", metavar="FILE", help="write the table as Markdown")
    parser.add_argument(
        "--filter",
        metavar="PATTERN",
        action="append",
        default=[],
        help="run only contestants whose id (scenario/size/contestant, see --list) contains "
        "PATTERN, or matches it as a glob; repeatable",
    )
    parser.add_argument(
        "--exclude",
        metavar="PATTERN",
        action="append",
        default=[],
        help="leave out contestants matching PATTERN; repeatable",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the contestant ids that would run, and exit"
    )
    parser.add_argument(
        "--repeats",
        type=_positive_int,
        metavar="N",
        help="timed repeats per row (median; default 5)",
    )
    parser.add_argument(
        "--min-time",
        type=_non_negative_float,
        metavar="SECONDS",
        help="shortest timed repeat; fast runs are looped to last that long "
        "(default 0.01, 0.005 with --quick)",
    )
    parser.add_argument(
        "--scale",
        type=_positive_float,
        metavar="FACTOR",
        help="multiply every workload's size (default 1, or 0.5 with --quick)",
    )
    parser.add_argument(
        "--server-time",
        type=_positive_float,
        metavar="SECONDS",
        help="seconds each server run is measured, after its warm-up "
        "(default 2, 1 with --quick, 3 with --full)",
    )
    parser.add_argument(
        "--server-warmup",
        type=_non_negative_float,
        metavar="SECONDS",
        help="seconds of load before each server run is measured (default 0.5)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"exit with status {EXIT_MISSED} when a speed target is missed (for CI on a quiet "
        "machine); without it a miss is only reported",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    parser.epilog = EXIT_STATUS


def _profile(args: argparse.Namespace) -> str:
    if args.quick:
        return "quick"
    if args.full:
        return "all"
    return "default"


def _check_plot_possible(path: Optional[str]) -> None:
    if path is None:
        return
    try:
        importlib.import_module("matplotlib.figure")
    except ImportError:
        raise CommandError(report.PLOT_MISSING) from None


def _measure_all(
    comparisons: List[harness.Comparison],
    session: harness.Session,
    settings: harness.Settings,
    progress: Optional[TextIO],
) -> List[harness.Result]:
    results: List[harness.Result] = []
    width = len(str(len(comparisons)))
    for i, comparison in enumerate(comparisons, 1):
        if progress is not None:
            progress.write(f"[{i:{width}}/{len(comparisons)}] {comparison.title} ... ")
            progress.flush()
        start = time.perf_counter()
        try:
            rows = harness.measure(comparison, session, settings)
        except Exception as exc:
            # The workload could not be built (the sender process did not
            # start): every row of this comparison says so.
            rows = [
                harness.Result(
                    comparison=comparison.id,
                    scenario=comparison.scenario.key,
                    title=comparison.scenario.title,
                    size=comparison.size,
                    contestant=c.name,
                    label=c.label,
                    role=c.role,
                    status="error",
                    note=f"could not set up the workload: {type(exc).__name__}: {exc}",
                )
                for c in comparison.contestants
            ]
        results.extend(rows)
        if progress is not None:
            progress.write(f"{time.perf_counter() - start:.1f} s\n")
            for r in rows:
                if r.status in ("failed", "error"):
                    progress.write(f"    {r.label}: {r.status}: {r.note}\n")
            progress.flush()
    return results


def run(args: argparse.Namespace) -> int:
    """Run the benchmarks; print the table; write the JSON, chart and Markdown asked for.

    Returns:
        0; 1 when a contestant produced a wrong output or failed; 3 with
        ``--check`` when a target was missed (see :data:`EXIT_STATUS`).

    Raises:
        CommandError: ``--plot`` without matplotlib, or a filter that matches nothing.
    """
    _check_plot_possible(args.plot)
    profile = _profile(args)
    settings, scale = catalogue.PROFILE_SETTINGS[profile]
    settings = harness.Settings(
        repeats=args.repeats if args.repeats is not None else settings.repeats,
        min_time=args.min_time if args.min_time is not None else settings.min_time,
    )
    scale = args.scale if args.scale is not None else scale
    comparisons = catalogue.select(catalogue.comparisons(profile), args.filter, args.exclude)
    if args.repeats is not None:  # --repeats holds for every comparison, the server ones too
        comparisons = [dataclasses.replace(c, repeats=None) for c in comparisons]
    if args.list:
        for comparison in comparisons:
            for c in comparison.contestants:
                print(f"{comparison.id}/{c.name}")
        return 0
    if not comparisons:
        raise CommandError("no contestant matches --filter/--exclude (see --list)")

    progress = None if args.quiet else sys.stderr
    count = sum(len(c.contestants) for c in comparisons)
    if progress is not None:
        progress.write(
            f"framekit bench ({profile}): {len(comparisons)} comparisons, {count} rows, "
            f"{settings.repeats} repeats, on {report.machine_summary()}\n"
        )
    started = time.time()
    start = time.perf_counter()
    options: Dict[str, Any] = {
        "server_duration": args.server_time,
        "server_warmup": args.server_warmup,
    }
    try:
        with harness.Session(scale, **options) as session:
            results = _measure_all(comparisons, session, settings, progress)
    except KeyboardInterrupt:
        # Ctrl-C: stop at once; the sender process was killed by the session.
        sys.stderr.write("\nframekit bench: interrupted; no results\n")
        raise
    elapsed = time.perf_counter() - start
    verdicts = targets.evaluate(results)
    missed = [v for v in verdicts if v.status == "missed"]

    print(f"framekit bench on {report.machine_summary()}")
    print(
        "Medians of the repeats; +-: half their range.  vs python, vs floor: throughput\n"
        "relative to framekit's pure-Python backend and to the floor, in the same run.\n"
    )
    print(report.format_table(results, verdicts), end="")
    if missed:
        print(f"\n{MISSED_NOTE}")
    if progress is not None:
        progress.write(f"framekit bench: done in {elapsed:.1f} s\n")

    run_settings: Dict[str, Any] = {
        "profile": profile,
        "repeats": settings.repeats,
        "min_time": settings.min_time,
        "scale": scale,
        "server_time": args.server_time,
        "server_warmup": args.server_warmup,
        "filter": args.filter,
        "exclude": args.exclude,
        "started": started,
        "elapsed_s": elapsed,
    }
    if args.json:
        report.write_json(args.json, report.to_json(results, verdicts, run_settings))
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(report.markdown_table(results, verdicts))
    if args.plot:
        panels = report.plot(
            results, args.plot, title=f"framekit bench: {report.machine_summary()}"
        )
        if panels == 0 and progress is not None:
            progress.write("framekit bench: nothing to plot (no scenario ran at two sizes)\n")
    if any(r.status in ("failed", "error") for r in results):
        return 1
    if args.check and missed:
        names = ", ".join(f"T{v.number}" for v in missed)
        sys.stderr.write(f"framekit bench: --check: {len(missed)} target(s) missed: {names}\n")
        return EXIT_MISSED
    return 0

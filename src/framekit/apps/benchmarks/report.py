"""Reporting results: a text table, a Markdown table, JSON with the machine, and a chart.

Design notes
------------
Absolute numbers only mean something on the machine that produced them, so
every output says what that machine was (:func:`machine_info`,
:func:`versions`) and the table leads with ratios: each row's throughput
relative to framekit's pure-Python backend and to the floor of the same
comparison, measured in the same run.  Targets are listed after the table,
met or missed, with the measured ratio.

Rows that were not timed are never silently dropped: a contestant whose
output was wrong, or that raised, has a row saying so; contestants skipped
because an optional package is missing are listed once, under the table.

The server benchmark's tables are laid out for its own numbers: frames/s,
round-trip latency (p50, p99) and the ratios to its reference (Netty) and to
its floor; a server that could not run (Netty without Java) keeps its row,
saying why.

matplotlib is optional (the ``bench`` extra) and imported only by
:func:`plot`, which draws on a bare ``Figure`` (no pyplot, no GUI backend).
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .harness import ROLE_FLOOR, ROLE_FRAMEKIT, ROLE_PYTHON, Result
from .targets import Verdict
from .workloads import size_label

__all__ = [
    "PLOT_MISSING",
    "format_rate",
    "format_table",
    "machine_info",
    "markdown_table",
    "plot",
    "skipped_notes",
    "to_json",
    "versions",
    "write_json",
]

#: What to tell a user whose Python lacks matplotlib.
PLOT_MISSING = "--plot needs matplotlib: pip install 'framekit[bench]' (or pip install matplotlib)"

_DISTRIBUTIONS = (
    "msgpack",
    "hiredis",
    "Twisted",
    "uvloop",
    "matplotlib",
    "pytest-benchmark",
    "Cython",
)


def format_rate(value: float) -> str:
    """``35.3M``, ``412k``, ``9.49G``, ``8.0``; ``-`` when not measured."""
    if value is None or math.isnan(value):
        return "-"
    for suffix, unit in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= unit:
            return f"{value / unit:.3g}{suffix}"
    return f"{value:.3g}"


def _ratio(value: Optional[float]) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}x" if value < 100 else f"{value:.0f}x"


def _by_comparison(results: Iterable[Result]) -> Dict[str, List[Result]]:
    groups: Dict[str, List[Result]] = {}
    for r in results:
        groups.setdefault(r.comparison, []).append(r)
    return groups


def _by_scenario(results: Iterable[Result]) -> Dict[str, List[List[Result]]]:
    """Scenario title -> its comparisons (lists of rows), in run order."""
    out: Dict[str, List[List[Result]]] = {}
    for rows in _by_comparison(results).values():
        out.setdefault(rows[0].title, []).append(rows)
    return out


def _heading(title: str, comparisons: List[List[Result]]) -> str:
    """A scenario's heading, naming the floor its "vs floor" column divides by."""
    floors = sorted({r.floor for rows in comparisons for r in rows if r.floor})
    return f"{title} (vs floor: {', '.join(floors)})" if floors else title


def _target_marks(verdicts: Sequence[Verdict]) -> Dict[Tuple[str, str], str]:
    """(comparison, subject) -> "T2 met, T3 MISSED" for the rows targets are about."""
    marks: Dict[Tuple[str, str], List[str]] = {}
    for v in verdicts:
        word = {"met": "met", "missed": "MISSED"}.get(v.status, "n/a")
        key = (v.target.comparison, v.target.subject)
        marks.setdefault(key, []).append(f"T{v.number} {word}")
    return {k: ", ".join(v) for k, v in marks.items()}


def format_latency(us: Optional[float]) -> str:
    """``812us``, ``13.8ms``, ``1.2s``; ``-`` when not measured."""
    if us is None or math.isnan(us):
        return "-"
    if us >= 1e6:
        return f"{us / 1e6:.3g}s"
    if us >= 1e3:
        return f"{us / 1e3:.3g}ms"
    return f"{us:.3g}us"


#: Scenarios whose Markdown matrix is relative to the floor (no pure-Python row to divide by).
_FLOOR_RELATIVE = ("e2e", "stream-", "send-file-")


def _is_server(r: Result) -> bool:
    return r.scenario.startswith("server-")


def _server_cells(r: Result, marks: Dict[Tuple[str, str], str]) -> List[str]:
    mark = marks.get((r.comparison, r.contestant), "")
    if r.status == "skipped":
        return [r.label, "skipped", "", "", "", "", "", "", "", r.note]
    if r.status in ("failed", "error"):
        word = "WRONG OUTPUT" if r.status == "failed" else "ERROR"
        return [r.label, word, "", "", "", "", "", "", "", r.note]
    spread = "" if math.isnan(r.spread) else f"{r.spread:.0%}"
    cpu = "/".join(
        "-" if math.isnan(r.metrics.get(k, math.nan)) else f"{r.metrics[k]:.2f}"
        for k in ("server_cpu", "loadgen_cpu")
    )
    per_frame = r.metrics.get("server_cpu", math.nan) * 1e6 / r.frames_per_s
    return [
        r.label,
        format_rate(r.frames_per_s),
        spread,
        format_latency(r.metrics.get("p50_us")),
        format_latency(r.metrics.get("p99_us")),
        cpu,
        format_latency(per_frame),
        _ratio(r.vs_reference),
        _ratio(r.vs_floor),
        mark,
    ]


def _server_block(
    title: str, comparisons: List[List[Result]], marks: Dict[Tuple[str, str], str]
) -> List[str]:
    rows = [r for group in comparisons for r in group]
    reference = next((r.reference for r in rows if r.reference), None)
    floor = next((r.floor for r in rows if r.floor), None)
    header = [
        "contestant",
        "frames/s",
        "+-",
        "p50",
        "p99",
        "cpu srv/gen",
        "srv cpu/frame",
        f"vs {_short(reference)}",
        "vs floor",
        "target",
    ]
    table = [_server_cells(r, marks) for r in rows]
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    numeric = {1, 2, 3, 4, 5, 6, 7, 8}

    def line(row: List[str]) -> str:
        cells = [
            c.rjust(widths[i]) if i in numeric else c.ljust(widths[i]) for i, c in enumerate(row)
        ]
        return "  " + "  ".join(cells).rstrip()

    notes = [
        f"{size_label(rows[0].size)} payloads; cpu: cores used by the server/the load generator; "
        "srv cpu/frame: the server's CPU time per frame, which a busy machine changes least"
    ]
    if reference:
        notes.append(f"vs {_short(reference)}: {reference}")
    if floor:
        notes.append(f"vs floor: {floor}")
    return [f"{title} ({'; '.join(notes)})", line(header), *map(line, table), ""]


def _short(label: Optional[str]) -> str:
    """A column name for a reference row: ``Netty``, or ``ref``."""
    return "Netty" if (label or "").startswith("Netty") else "ref"


def _cells(r: Result, marks: Dict[Tuple[str, str], str]) -> List[str]:
    mark = marks.get((r.comparison, r.contestant), "")
    if r.status == "failed":
        return [r.label, "WRONG OUTPUT", "", "", "", "", r.note]
    if r.status == "error":
        return [r.label, "ERROR", "", "", "", "", r.note]
    spread = "" if math.isnan(r.spread) else f"{r.spread:.0%}"
    return [
        r.label,
        format_rate(r.frames_per_s),
        format_rate(r.mb_per_s),
        spread,
        _ratio(r.vs_python),
        _ratio(r.vs_floor),
        mark,
    ]


_HEADERS = ["contestant", "frames/s", "MB/s", "+-", "vs python", "vs floor", "target"]
#: Columns of the text table (after "size") that are numbers, aligned right.
_NUMERIC = {2, 3, 4, 5, 6}


def _format_row(row: List[str], widths: List[int]) -> str:
    cells = [
        cell.rjust(widths[i]) if i in _NUMERIC else cell.ljust(widths[i])
        for i, cell in enumerate(row)
    ]
    return "  " + "  ".join(cells).rstrip()


def format_table(results: Sequence[Result], verdicts: Sequence[Verdict] = ()) -> str:
    """The results as a text table, one block per scenario, then the targets.

    Rows are medians; ``+-`` is half the range of the repeats; ``vs python``
    and ``vs floor`` are throughput ratios to the pure-Python backend and to
    the floor of the same comparison.
    """
    marks = _target_marks(verdicts)
    lines: List[str] = []
    for title, comparisons in _by_scenario(results).items():
        if _is_server(comparisons[0][0]):
            lines.extend(_server_block(title, comparisons, marks))
            continue
        table: List[List[str]] = []
        for rows in comparisons:
            shown = [r for r in rows if r.status != "skipped"]
            for i, r in enumerate(shown):
                size = size_label(r.size) if i == 0 else ""
                table.append([size, *_cells(r, marks)])
        if not table:
            continue
        header = ["size", *_HEADERS]
        widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
        lines.append(_heading(title, comparisons))
        lines.append(_format_row(header, widths))
        lines.extend(_format_row(row, widths) for row in table)
        lines.append("")
    if verdicts:
        lines.append("Targets (ratios between rows of the same run):")
        for v in verdicts:
            got = "" if v.ratio is None else f": {v.ratio:.3g}x"
            word = {"met": "met   ", "missed": "MISSED"}.get(v.status, v.status)
            lines.append(f"  T{v.number} [{word}] {v.text}{got}")
        lines.append("")
    notes = skipped_notes(results)
    if notes:
        lines.append("Skipped:")
        lines.extend(f"  {note}" for note in notes)
    return "\n".join(lines).rstrip() + "\n"


def skipped_notes(results: Iterable[Result]) -> List[str]:
    """One line per skipped contestant: which, and why."""
    seen: Dict[str, str] = {}
    for r in results:
        if r.status == "skipped" and r.label not in seen and not _is_server(r):
            seen[r.label] = r.note
    return [f"{label}: {note}" for label, note in seen.items()]


def markdown_table(results: Sequence[Result], verdicts: Sequence[Verdict] = ()) -> str:
    """The results as Markdown ratio matrices, then the targets (made for a README).

    One matrix per scenario: a row per contestant, a column per payload
    size, each cell the throughput relative to a reference row of the same
    comparison: framekit's pure-Python backend for the codec scenarios, the
    floor (raw ``recv_into``) for the end-to-end ones.  Ratios, not absolute
    numbers, because only ratios carry over to another machine.
    """
    out: List[str] = []
    out.extend(_server_markdown([r for r in results if _is_server(r)]))
    for title, comparisons in _by_scenario(results).items():
        if _is_server(comparisons[0][0]):
            continue
        end_to_end = comparisons[0][0].scenario.startswith(_FLOOR_RELATIVE)
        reference = next(
            (
                r.floor if end_to_end else r.label
                for rows in comparisons
                for r in rows
                if (r.floor if end_to_end else r.role == ROLE_PYTHON and r.ok)
            ),
            None,
        )
        if reference is None:
            continue
        sizes = [rows[0].size for rows in comparisons]
        cells: Dict[str, Dict[int, str]] = {}
        for rows in comparisons:
            for r in rows:
                if r.status == "skipped":
                    continue
                ratio = r.vs_floor if end_to_end else r.vs_python
                text = _ratio(ratio) if r.ok else {"failed": "wrong"}.get(r.status, r.status)
                cells.setdefault(r.label, {})[r.size] = text
        out.append(f"**{title}**: throughput relative to {reference}\n")
        out.append("| | " + " | ".join(size_label(s) for s in sizes) + " |")
        out.append("|---|" + "--:|" * len(sizes))
        for label, by_size in cells.items():
            row = [by_size.get(size, "") for size in sizes]
            out.append(f"| {label} | " + " | ".join(row) + " |")
        out.append("")
    if verdicts:
        out.append("**Targets** (ratios between rows of the same run)\n")
        for v in verdicts:
            got = "" if v.ratio is None else f": {v.ratio:.3g}x"
            out.append(f"- T{v.number} **{v.status}**: {v.text}{got}")
        out.append("")
    return "\n".join(out)


def _server_markdown(results: Sequence[Result]) -> List[str]:
    """The server benchmark as Markdown: one matrix for the loads, one per other comparison.

    A matrix has a row per server and a column per load; each cell is the
    throughput relative to the reference row (Netty), then frames/s and the
    p50 / p99 round trip.
    """
    groups: Dict[str, List[Result]] = {}
    for r in results:
        key = "workers" if r.scenario.startswith("server-workers") else "loads"
        groups.setdefault(key, []).append(r)
    out: List[str] = []
    for rows in groups.values():
        loads: Dict[str, str] = {}
        for r in rows:
            loads.setdefault(r.comparison, r.title.replace("echo server, ", ""))
        reference = next((r.reference for r in rows if r.reference), None)
        title = rows[0].title.split(",")[0] if len(loads) > 1 else rows[0].title
        against = f"throughput relative to {reference}" if reference else "throughput"
        out.append(
            f"**{title}**, {size_label(rows[0].size)} payloads: {against}; frames/s; "
            "p50 / p99 round trip\n"
        )
        out.append("| | " + " | ".join(loads.values()) + " |")
        out.append("|---|" + "--:|" * len(loads))
        cells: Dict[str, Dict[str, str]] = {}
        for r in rows:
            if r.ok:
                ratio = f"**{_ratio(r.vs_reference)}** · " if r.vs_reference is not None else ""
                text = (
                    f"{ratio}{format_rate(r.frames_per_s)}/s · "
                    f"{format_latency(r.metrics.get('p50_us'))} / "
                    f"{format_latency(r.metrics.get('p99_us'))}"
                )
            else:
                text = {"failed": "wrong", "skipped": "not run"}.get(r.status, r.status)
            cells.setdefault(r.label, {})[r.comparison] = text
        for label, by_load in cells.items():
            out.append(f"| {label} | " + " | ".join(by_load.get(c, "") for c in loads) + " |")
        out.append("")
    return out


def _cpu_model() -> Optional[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info() -> Dict[str, Any]:
    """The machine the numbers come from: OS, CPU, cores, Python."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "system": platform.system(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "python_build": " ".join(platform.python_build()),
    }


def versions() -> Dict[str, Optional[str]]:
    """framekit's version and backend, and the versions of the peers and tools."""
    from importlib import metadata

    import framekit

    out: Dict[str, Optional[str]] = {
        "framekit": framekit.__version__,
        "framekit_backend": framekit.BACKEND,
    }
    for dist in _DISTRIBUTIONS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def machine_summary() -> str:
    """One line: ``Linux x86_64, 2 cores (AMD EPYC ...), CPython 3.11.7``."""
    m = machine_info()
    cores = m["usable_cpus"] or m["cpu_count"]
    cpu = f" ({m['cpu']})" if m["cpu"] else ""
    return f"{m['system']} {m['machine']}, {cores} cores{cpu}, {m['implementation']} {m['python']}"


def to_json(
    results: Sequence[Result], verdicts: Sequence[Verdict], settings: Dict[str, Any]
) -> Dict[str, Any]:
    """Everything a later reader needs: machine, versions, settings, rows, targets."""
    return {
        "machine": machine_info(),
        "versions": versions(),
        "settings": settings,
        "results": [r.as_dict() for r in results],
        "targets": [
            {
                **v.target.__dict__,
                "status": v.status,
                "ratio": v.ratio,
                "text": v.text,
            }
            for v in verdicts
        ],
    }


def write_json(path: str, data: Dict[str, Any]) -> None:
    """Write ``data`` as indented JSON to ``path`` (``-`` is stdout)."""
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


#: role -> (line width, line style) in the chart.
_LINE_STYLES = {
    ROLE_FRAMEKIT: (2.4, "-"),
    ROLE_PYTHON: (1.6, "-."),
    ROLE_FLOOR: (1.2, "--"),
}


def plot(results: Sequence[Result], path: str, *, title: str = "") -> int:
    """Draw throughput (MB/s of payload) against payload size, one panel per scenario.

    Only scenarios measured at two sizes or more get a panel; each contestant
    is one line, both axes are logarithmic.  framekit is drawn solid and
    thick, the floors dashed.

    Returns:
        The number of panels drawn (0: nothing to plot, no file written).

    Raises:
        ImportError: matplotlib is not installed (see :data:`PLOT_MISSING`).
    """
    from matplotlib.figure import Figure

    panels = [
        (t, comparisons)
        for t, comparisons in _by_scenario(results).items()
        if len({rows[0].size for rows in comparisons}) >= 2
    ]
    if not panels:
        return 0
    cols = 2 if len(panels) > 1 else 1
    rows_n = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(6.4 * cols, 4.4 * rows_n), layout="constrained")
    if title:
        fig.suptitle(title)
    for i, (scenario_title, comparisons) in enumerate(panels):
        ax = fig.add_subplot(rows_n, cols, i + 1)
        lines: Dict[str, List[Tuple[int, float]]] = {}
        roles: Dict[str, str] = {}
        for rows in comparisons:
            for r in rows:
                if r.ok:
                    lines.setdefault(r.label, []).append((r.size, r.mb_per_s))
                    roles[r.label] = r.role
        sizes = sorted({rows[0].size for rows in comparisons})
        for label, points in lines.items():
            points.sort()
            role = roles[label]
            width, dashes = _LINE_STYLES.get(role, (1.2, ":"))
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                marker="o",
                label=label,
                linewidth=width,
                linestyle=dashes,
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(sizes)
        ax.set_xticklabels([size_label(s) for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel("payload size")
        ax.set_ylabel("throughput (MB/s of payload)")
        ax.set_title(scenario_title)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize="x-small")
    fig.savefig(path, dpi=100)
    return len(panels)

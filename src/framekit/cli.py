"""The ``framekit`` command (also ``python -m framekit``).

Design notes
------------
``main(argv=None)`` is a plain function so tests call it directly.  Each
subcommand lives in its own module under :mod:`framekit.tools` and provides
``add_arguments(parser)`` and ``run(args) -> int``; this module only wires them
to argparse, which keeps each tool small and the command's help in one place.
Modules are imported when the parser is built, not at ``import framekit``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

__all__ = ["main", "build_parser"]

#: subcommand -> (module under framekit.tools, one-line help)
COMMANDS = {
    "bench": ("bench", "compare the Cython and pure-Python codecs and the usual alternatives"),
}


def build_parser() -> argparse.ArgumentParser:
    """Return the ``framekit`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="framekit", description="Message framing for sockets: tools and benchmarks."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"framekit.tools.{module_name}")
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``framekit`` command; return its exit status."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(f"framekit {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

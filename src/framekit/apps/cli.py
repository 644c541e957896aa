"""The ``framekit`` command (also ``python -m framekit``).

Design notes
------------
``main(argv=None)`` is a plain function so tests call it directly.  Each
subcommand lives in its own module under :mod:`framekit.apps.commands` and provides
``add_arguments(parser)`` and ``run(args) -> int``; this module only wires them
to argparse, which keeps each tool small and the command's help in one place.
Modules are imported when the parser is built, not at ``import framekit``.
A module holding several subcommands names each with ``"module:attribute"``;
the attribute then provides ``add_arguments`` and ``run``.

Errors: a tool raises; :func:`main` prints one line, ``framekit CMD: error:
REASON``, and returns 1 (130 for Ctrl-C).  No traceback unless ``--debug``,
which is accepted before the subcommand and after it.
:func:`describe_error` writes that line for any exception (``OSError``'s
``[Errno N]`` noise dropped, TLS errors named), and :class:`CommandError`
carries a reason already written for the user.  Log records of the
``framekit`` logger go to stderr in the same one-line form while a command
runs (INFO and up; DEBUG with ``--debug``).

Imports go one way: the subcommands import :mod:`framekit.apps.errors` and
:mod:`framekit.apps.logs`, never this module, which imports them (its
``CommandError``, ``describe_error`` and ``setup_logging`` are those modules'
objects, re-exported).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import sys
from typing import Any, Optional, Sequence

from .errors import CommandError, describe_error
from .logs import setup_logging

__all__ = ["CommandError", "build_parser", "describe_error", "main", "setup_logging", "version"]

#: subcommand -> (module under framekit.apps.commands, one-line help)
COMMANDS = {
    "serve": ("serve", "run an echo server (--upper: the tutorials' upper-case server)"),
    "send": ("send", "send messages as frames and print the replies"),
    "send-file": ("files:send", "send files (name, size and sha256 checked by the receiver)"),
    "recv-file": ("files:recv", "receive files sent by send-file into a directory"),
    "explain": ("explain", "draw a framing's layout; annotate a hex dump frame by frame"),
    "info": ("info", "version, codec backend (and why), Python, optional packages, build"),
    "bench": ("bench", "compare the Cython and pure-Python codecs and the usual alternatives"),
}

_DEBUG_HELP = "show tracebacks on errors"


def version() -> str:
    """``framekit 0.1.0 (cython backend, CPython 3.11.7)``."""
    import platform

    import framekit

    return (
        f"framekit {framekit.__version__} ({framekit.BACKEND} backend, "
        f"{platform.python_implementation()} {platform.python_version()})"
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the ``framekit`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="framekit", description="Message framing for sockets: tools and benchmarks."
    )
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    parser.add_argument(
        "--version", action="version", version=version(), help="print the version and exit"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        module_name, _, attribute = module_name.partition(":")
        command = sub.add_parser(name, help=help_text, description=help_text)
        # Also after the subcommand; SUPPRESS keeps a --debug given before it.
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP
        )
        try:
            module: Any = importlib.import_module(f"framekit.apps.commands.{module_name}")
        except ImportError as exc:
            # One tool that cannot load (a missing optional dependency) must not
            # take the other subcommands down; it fails alone, when it is run.
            command.set_defaults(_run=functools.partial(_unavailable, exc), _any_arguments=True)
            continue
        if attribute:
            module = getattr(module, attribute)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def _unavailable(exc: ImportError, args: argparse.Namespace) -> int:
    raise CommandError(f"this command cannot load: {exc}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``framekit`` command; return its exit status."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(list(argv) if argv is not None else None)
    if unknown and not getattr(args, "_any_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    logger = logging.getLogger("framekit")
    level = logger.level
    handler = setup_logging(args.command, args.debug)
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(f"framekit {args.command}: error: {describe_error(exc)}", file=sys.stderr)
        return 1
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

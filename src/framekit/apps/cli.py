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
REASON``, and returns 1 (130 for Ctrl-C).  No traceback unless ``--debug``.
:func:`describe_error` writes that line for any exception (``OSError``'s
``[Errno N]`` noise dropped, TLS errors named), and :class:`CommandError`
carries a reason already written for the user.  Log records of the
``framekit`` logger go to stderr in the same one-line form while a command
runs (INFO and up; DEBUG with ``--debug``).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import socket
import ssl
import sys
from typing import Any, Optional, Sequence

__all__ = ["CommandError", "build_parser", "describe_error", "main", "setup_logging"]

#: subcommand -> (module under framekit.apps.commands, one-line help)
COMMANDS = {
    "serve": ("serve", "run an echo server (--upper: the tutorials' upper-case server)"),
    "send": ("send", "send messages as frames and print the replies"),
    "send-file": ("files:send", "send files (name, size and sha256 checked by the receiver)"),
    "recv-file": ("files:recv", "receive files sent by send-file into a directory"),
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
        module_name, _, attribute = module_name.partition(":")
        command = sub.add_parser(name, help=help_text, description=help_text)
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


class CommandError(Exception):
    """A failure whose message is already the one line the user should read."""


def describe_error(exc: BaseException) -> str:
    """Return one line saying what went wrong, without Python's noise."""
    if isinstance(exc, CommandError):
        text = str(exc)
    elif isinstance(exc, ssl.SSLCertVerificationError):
        text = f"TLS certificate verification failed: {getattr(exc, 'verify_message', exc)}"
    elif isinstance(exc, ssl.SSLError):
        text = f"TLS error: {getattr(exc, 'reason', None) or exc}"
    elif isinstance(exc, socket.timeout) and not exc.strerror:
        text = str(exc) or "timed out"
    elif isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
        if exc.filename is not None:
            text = f"{exc.filename}: {text}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


class _Formatter(logging.Formatter):
    def __init__(self, command: str) -> None:
        super().__init__()
        self.command = command

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.ERROR:
            level = "error: "
        elif record.levelno >= logging.WARNING:
            level = "warning: "
        else:
            level = ""
        line = f"framekit {self.command}: {level}{record.getMessage()}"
        if record.exc_info and logging.getLogger("framekit").isEnabledFor(logging.DEBUG):
            line += "\n" + self.formatException(record.exc_info)
        return line


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record arrives (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup_logging(command: str, debug: bool = False) -> logging.Handler:
    """Send the ``framekit`` logger's records to stderr as one-line messages.

    Returns:
        The handler; pass it to ``logging.getLogger("framekit").removeHandler``
        when done.
    """
    handler = _StderrHandler()
    handler.setFormatter(_Formatter(command))
    logger = logging.getLogger("framekit")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    return handler


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

"""Build the optional ``framekit._speedups`` Cython extension.

Everything else about the package lives in ``pyproject.toml``.  This file only
decides whether and how to compile the extension, controlled by the
``FRAMEKIT_BUILD_EXTENSION`` environment variable:

* ``auto`` (default): try to build; if compiling fails, install the pure-Python
  package anyway and print a loud warning.
* ``yes``: a failed build is an error (CI and release builds use this, so a
  wheel can never silently lack the fast path).
* ``no``: do not build the extension at all.

What happened is recorded in ``framekit/_build_info.json`` (``built``,
``failed`` with the reason, or ``skipped``; the mode; the compiler), which
``framekit info`` shows and which tells ``import framekit`` whether a missing
extension deserves a warning (see ``framekit.codecs.backend``).

A wheel without the extension is named for what it is: ``py3-none-any``, not
the interpreter and platform tags of a compiled wheel.  Otherwise an ``auto``
build that fell back would look like a compiled wheel, in pip's cache too.
"""

import json
import os
import re
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_ext import build_ext

MODE = os.environ.get("FRAMEKIT_BUILD_EXTENSION", "auto").strip().lower()
if MODE not in ("auto", "yes", "no"):
    sys.exit(f"FRAMEKIT_BUILD_EXTENSION must be auto, yes or no, not {MODE!r}")

NAME = "framekit._speedups"
#: What the build did with the codec extension (NAME); written to framekit/_build_info.json.
RECORD = {"extension": "skipped", "mode": MODE, "reason": "", "compiler": ""}
#: Every extension that was compiled; none: the wheel is pure.
BUILT: set = set()
#: Why the extension cannot even be attempted (no Cython, a .pyx that does not translate).
PROBLEM = ""


class OptionalBuildExt(build_ext):
    """build_ext that turns a compile failure into a warning in ``auto`` mode."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure
            self._fail(exc)
        finally:
            self._write_record()

    def build_extension(self, ext: Extension) -> None:
        codec = ext.name == NAME  # the record is about the codec's extension
        if MODE == "no":
            if codec:
                RECORD.update(extension="skipped", reason="FRAMEKIT_BUILD_EXTENSION=no")
            return
        if codec:
            RECORD["compiler"] = self._compiler_name()
        try:
            if PROBLEM:
                raise RuntimeError(PROBLEM)
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._fail(exc, record=codec)
        else:
            BUILT.add(ext.name)
            if codec:
                RECORD.update(extension="built", reason="")

    def _compiler_name(self) -> str:
        command = getattr(self.compiler, "compiler_so", None) or []
        if not command:
            return type(self.compiler).__name__
        try:
            out = subprocess.run(
                [command[0], "--version"], capture_output=True, text=True, timeout=10
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        first = out.strip().splitlines()[0] if out.strip() else ""
        return f"{command[0]} ({first})" if first else command[0]

    def _fail(self, exc: BaseException, *, record: bool = True) -> None:
        if MODE == "yes":
            raise exc
        reason = " ".join(str(exc).split()) or type(exc).__name__
        command = re.search(r"Command '\['([^']+)'.*exit status (-?\d+)", reason)
        if command:  # not the whole command line: the compiler and its status
            reason = f"the compiler {command.group(1)} failed with exit status {command.group(2)}"
        elif len(reason) > 300:
            reason = reason[:297] + "..."
        if record:
            RECORD.update(extension="failed", reason=reason)
        banner = "*" * 75
        sys.stderr.write(
            f"\n{banner}\nWARNING: the framekit._speedups extension could not be compiled "
            f"({reason}).\nframekit will be installed with the pure-Python codec, which is "
            f"much slower, as a pure wheel (py3-none-any).\n'import framekit' will warn; "
            f"'framekit info' says why.\nSet FRAMEKIT_BUILD_EXTENSION=yes to make this an "
            f"error.\n{banner}\n\n"
        )

    def _record_paths(self) -> list:
        paths = [os.path.dirname(self.get_ext_fullpath(NAME))]
        if self.inplace or getattr(self, "editable_mode", False):
            source = self.get_finalized_command("build_py").get_package_dir("framekit")
            paths.append(os.path.abspath(source))
        return list(dict.fromkeys(paths))

    def _write_record(self) -> None:
        for directory in self._record_paths():
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, "_build_info.json"), "w", encoding="utf-8") as f:
                json.dump(RECORD, f, indent=1)
                f.write("\n")

    def get_outputs(self) -> list:
        record = os.path.join(os.path.dirname(self.get_ext_fullpath(NAME)), "_build_info.json")
        return [*super().get_outputs(), record]


class HonestBdistWheel(bdist_wheel):
    """Tag the wheel ``py3-none-any`` when no extension was built into it."""

    def run(self) -> None:
        if not self.skip_build:
            self.run_command("build")
            self.skip_build = True  # built once; the install step must not build again
        if not BUILT:
            self.root_is_pure = True
            self.distribution.ext_modules = []  # so the files go to purelib too
        super().run()


def extensions() -> list:
    global PROBLEM
    source = "src/framekit/_speedups.pyx"
    ext = Extension(
        NAME, [source], extra_compile_args=["-O3"] if sys.platform != "win32" else []
    )
    if MODE == "no":
        return [ext]  # OptionalBuildExt skips it, and records that
    try:
        from Cython.Build import cythonize
    except ImportError:
        if MODE == "yes":
            raise
        PROBLEM = "Cython is not available"
        return [ext]
    try:
        return cythonize(
            [ext],
            compiler_directives={"language_level": "3", "embedsignature": True},
            quiet=True,
        )
    except Exception as exc:  # noqa: BLE001 - a .pyx that does not translate
        if MODE == "yes":
            raise
        PROBLEM = f"cythonize failed: {exc}"
        return [ext]


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": OptionalBuildExt, "bdist_wheel": HonestBdistWheel},
)

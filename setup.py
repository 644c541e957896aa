"""Build the optional Cython extensions.

* ``framekit._speedups``: the length-prefixed codec (every platform);
* ``framekit._speedups_text``: lines, delimiters, netstrings and fixed-length
  frames (every platform);
* ``framekit.apps.benchmarks._loadgen``: the server benchmark's load generator
  and raw echo floor, ``epoll`` loops, so Linux only (``framekit bench`` skips
  the server rows elsewhere, with a note).

Everything else about the package lives in ``pyproject.toml``.  This file only
decides whether and how to compile the extensions, controlled by the
``FRAMEKIT_BUILD_EXTENSION`` environment variable:

* ``auto`` (default): try to build; if compiling one fails, install without it
  (its codecs use their pure-Python twins) and print a loud warning.
* ``yes``: a failed build of any extension is an error (CI and release builds
  use this, so a wheel can never silently lack a fast path).
* ``no``: do not build the extensions at all.

What happened to the codec extensions is recorded in
``framekit/_build_info.json`` (``built``, ``failed`` with the reason, or
``skipped``; the mode; the compiler), which ``framekit info`` shows and which
tells ``import framekit`` whether a missing extension deserves a warning (see
``framekit.codecs.backend``).

A wheel without any extension is named for what it is: ``py3-none-any``, not
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

#: (module, source, is a codec, built on this platform)
EXTENSIONS = [
    ("framekit._speedups", "src/framekit/_speedups.pyx", True, True),
    ("framekit._speedups_text", "src/framekit/_speedups_text.pyx", True, True),
    (
        "framekit.apps.benchmarks._loadgen",
        "src/framekit/apps/benchmarks/_loadgen.pyx",
        False,
        sys.platform.startswith("linux"),
    ),
]
CODECS = [name for name, _, codec, _ in EXTENSIONS if codec]
#: What the build did with the codec extensions; written to framekit/_build_info.json.
#: ``extension`` sums them up: ``built`` if all were, ``failed`` if one failed.
RECORD = {
    "extension": "skipped",
    "mode": MODE,
    "reason": "",
    "compiler": "",
    "extensions": {name: "skipped" for name in CODECS},
}
#: Every extension that was compiled; none: the wheel is pure.
BUILT: set = set()
#: Why the extensions cannot even be attempted (no Cython), or one cannot (a .pyx
#: that does not translate), by module.
PROBLEMS: dict = {}


def _sum_up() -> None:
    states = RECORD["extensions"].values()
    if any(state == "failed" for state in states):
        RECORD["extension"] = "failed"
    elif all(state == "built" for state in states):
        RECORD["extension"] = "built"
        RECORD["reason"] = ""
    else:
        RECORD["extension"] = "skipped"


class OptionalBuildExt(build_ext):
    """build_ext that turns a compile failure into a warning in ``auto`` mode."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            self._fail(exc, "framekit")
        finally:
            _sum_up()
            self._write_record()

    def build_extension(self, ext: Extension) -> None:
        codec = ext.name in CODECS
        if MODE == "no":
            if codec:
                RECORD["extensions"][ext.name] = "skipped"
                RECORD["reason"] = "FRAMEKIT_BUILD_EXTENSION=no"
            return
        if codec and not RECORD["compiler"]:
            RECORD["compiler"] = self._compiler_name()
        try:
            problem = PROBLEMS.get(ext.name) or PROBLEMS.get("*")
            if problem:
                raise RuntimeError(problem)
            super().build_extension(ext)
        except Exception as exc:
            self._fail(exc, ext.name)
        else:
            BUILT.add(ext.name)
            if codec:
                RECORD["extensions"][ext.name] = "built"

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

    def _fail(self, exc: BaseException, name: str) -> None:
        if MODE == "yes":
            raise exc
        reason = " ".join(str(exc).split()) or type(exc).__name__
        command = re.search(r"Command '\['([^']+)'.*exit status (-?\d+)", reason)
        if command:  # not the whole command line: the compiler and its status
            reason = f"the compiler {command.group(1)} failed with exit status {command.group(2)}"
        elif len(reason) > 300:
            reason = reason[:297] + "..."
        if name in CODECS:
            RECORD["extensions"][name] = "failed"
            RECORD["reason"] = reason
        if name.endswith("_loadgen"):
            what = "framekit bench will skip its server benchmark (it needs the load generator)."
        else:
            what = (
                "its codecs will use their pure-Python twins, which are much slower; without "
                "any extension the wheel is pure (py3-none-any).\n'import framekit' will warn; "
                "'framekit info' says why."
            )
        banner = "*" * 75
        sys.stderr.write(
            f"\n{banner}\nWARNING: the {name} extension could not be compiled ({reason}).\n"
            f"{what}\nSet FRAMEKIT_BUILD_EXTENSION=yes to make this an error.\n{banner}\n\n"
        )

    def _record_paths(self) -> list:
        paths = [os.path.dirname(self.get_ext_fullpath(CODECS[0]))]
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
        folder = os.path.dirname(self.get_ext_fullpath(CODECS[0]))
        return [*super().get_outputs(), os.path.join(folder, "_build_info.json")]


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
    args = ["-O3"] if sys.platform != "win32" else []
    exts = [
        Extension(name, [source], extra_compile_args=args)
        for name, source, _, wanted in EXTENSIONS
        if wanted
    ]
    if MODE == "no":
        return exts  # OptionalBuildExt skips them, and records that
    try:
        from Cython.Build import cythonize
    except ImportError:
        if MODE == "yes":
            raise
        PROBLEMS["*"] = "Cython is not available"
        return exts
    built = []
    for ext in exts:
        try:
            built += cythonize(
                [ext],
                compiler_directives={"language_level": "3", "embedsignature": True},
                quiet=True,
            )
        except Exception as exc:  # a .pyx that does not translate
            if MODE == "yes":
                raise
            PROBLEMS[ext.name] = f"cythonize failed: {exc}"
            built.append(ext)
    return built


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": OptionalBuildExt, "bdist_wheel": HonestBdistWheel},
)

"""Build the optional Cython extensions.

* ``framekit._speedups``: the compiled codec (every platform);
* ``framekit.apps.benchmarks._loadgen``: the server benchmark's load generator
  and raw echo floor, ``epoll`` loops, so Linux only (``framekit bench`` skips
  the server rows elsewhere, with a note).

Everything else about the package lives in ``pyproject.toml``.  This file only
decides whether and how to compile the extension, controlled by the
``FRAMEKIT_BUILD_EXTENSION`` environment variable:

* ``auto`` (default): try to build; if compiling fails, install the pure-Python
  package anyway and print a loud warning.
* ``yes``: a failed build (of either) is an error (CI and release builds use this, so a
  wheel can never silently lack the fast path).
* ``no``: do not build the extension at all.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

MODE = os.environ.get("FRAMEKIT_BUILD_EXTENSION", "auto").strip().lower()
if MODE not in ("auto", "yes", "no"):
    sys.exit(f"FRAMEKIT_BUILD_EXTENSION must be auto, yes or no, not {MODE!r}")


class OptionalBuildExt(build_ext):
    """build_ext that turns a compile failure into a warning in ``auto`` mode."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            self._fail(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._fail(exc, ext)

    def _fail(self, exc: BaseException, ext: "Extension | None" = None) -> None:
        if MODE == "yes":
            raise exc
        banner = "*" * 75
        if ext is not None and ext.name.endswith("_loadgen"):
            what = "framekit bench will skip its server benchmark (it needs the load generator)."
        else:
            what = "framekit will be installed with the pure-Python codec, which is much slower."
        name = ext.name if ext is not None else "framekit"
        sys.stderr.write(
            f"\n{banner}\nWARNING: the {name} extension could not be compiled "
            f"({exc}).\n{what}\nSet FRAMEKIT_BUILD_EXTENSION=yes to make this an error.\n"
            f"{banner}\n\n"
        )


def extensions() -> list:
    if MODE == "no":
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        if MODE == "yes":
            raise
        sys.stderr.write("WARNING: Cython is not available; building framekit without speedups.\n")
        return []
    args = ["-O3"] if sys.platform != "win32" else []
    exts = [
        Extension("framekit._speedups", ["src/framekit/_speedups.pyx"], extra_compile_args=args)
    ]
    if sys.platform.startswith("linux"):
        exts.append(
            Extension(
                "framekit.apps.benchmarks._loadgen",
                ["src/framekit/apps/benchmarks/_loadgen.pyx"],
                extra_compile_args=args,
            )
        )
    try:
        return cythonize(
            exts,
            compiler_directives={"language_level": "3", "embedsignature": True},
            quiet=True,
        )
    except Exception as exc:
        if MODE == "yes":
            raise
        sys.stderr.write(
            f"WARNING: cythonize failed ({exc}); building framekit without speedups.\n"
        )
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})

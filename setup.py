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
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

MODE = os.environ.get("FRAMEKIT_BUILD_EXTENSION", "auto").strip().lower()
if MODE not in ("auto", "yes", "no"):
    sys.exit(f"FRAMEKIT_BUILD_EXTENSION must be auto, yes or no, not {MODE!r}")

#: (module, source, built on this platform)
EXTENSIONS = [
    ("framekit._speedups", "src/framekit/_speedups.pyx", True),
    ("framekit._speedups_text", "src/framekit/_speedups_text.pyx", True),
    (
        "framekit.apps.benchmarks._loadgen",
        "src/framekit/apps/benchmarks/_loadgen.pyx",
        sys.platform.startswith("linux"),
    ),
]


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
            self._fail(exc, ext.name)

    def _fail(self, exc: BaseException, name: str = "framekit") -> None:
        if MODE == "yes":
            raise exc
        banner = "*" * 75
        if name.endswith("_loadgen"):
            what = "framekit bench will skip its server benchmark (it needs the load generator)."
        else:
            what = "its codecs will use their pure-Python twins, which are much slower."
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
    built = []
    for name, source, wanted in EXTENSIONS:
        if not wanted:
            continue
        ext = Extension(name, [source], extra_compile_args=args)
        try:
            built += cythonize(
                [ext],
                compiler_directives={"language_level": "3", "embedsignature": True},
                quiet=True,
            )
        except Exception as exc:  # a .pyx that does not translate
            if MODE == "yes":
                raise
            sys.stderr.write(f"WARNING: cythonize failed ({exc}); building without {name}.\n")
    return built


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})

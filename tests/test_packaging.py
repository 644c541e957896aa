"""The distributions: the sdist is complete (its tests run), and a failed build says so.

These build and install for real, so they take a minute or so together: they
are marked ``slow`` (``pytest -m "not slow"`` skips them; CI runs them).  Every
build and install goes into a temporary directory, with ``--no-cache-dir``, so
nothing is left in pip's cache.  The new virtual environments see the test
environment's packages (pytest, hypothesis...) through a ``.pth`` line placed
after their own site-packages, so only framekit itself is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path
from typing import Any, List

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX paths and CC=/bin/false"),
]


def _run(args: List[Any], **kwargs: Any) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEKIT_")}
    env.update(kwargs.pop("env", {}))
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, timeout=300, **kwargs
    )


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("build", reason="the 'build' package builds the sdist")
    out = tmp_path_factory.mktemp("dist")
    proc = _run([sys.executable, "-m", "build", "--sdist", "--outdir", out, ROOT])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (path,) = out.glob("framekit-*.tar.gz")
    return path


def _venv(path: Path) -> Path:
    """A virtual environment that also sees this one's packages (after its own)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", path], check=True)
    python = path / "bin" / "python"
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    here = sysconfig.get_paths()["purelib"]
    Path(site.stdout.strip(), "zz_test_env.pth").write_text(here + "\n")
    return python


def _pip_install(python: Path, target: Path, **env: str) -> subprocess.CompletedProcess:
    proc = _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-v", "--no-deps",
         "--no-cache-dir", target],
        env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_the_sdist_is_complete_and_its_tests_run(sdist: Path, tmp_path: Path) -> None:
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
        tar.extractall(tmp_path)
    for needed in (
        "LICENSE",
        "README.md",
        "tests/__init__.py",
        "tests/conftest.py",
        "tests/codec_helpers.py",
        "tests/apps/__init__.py",
        "tests/apps/conftest.py",
        "tests/sync/helpers.py",
        "tests/aio/helpers.py",
        "bench/conftest.py",
        "examples/echo_server.py",
        "examples/echo_client.py",
        "src/framekit/_speedups.pyx",
        "src/framekit/py.typed",
    ):
        assert needed in names, f"{needed} is missing from the sdist"
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert not [n for n in names if n.endswith((".c", ".so", ".pyc", "_build_info.json"))]

    unpacked = tmp_path / sdist.name[: -len(".tar.gz")]
    python = _venv(tmp_path / "venv")
    _pip_install(python, sdist, FRAMEKIT_BUILD_EXTENSION="no")  # pure: no compile, faster
    where = _run([python, "-c", "import framekit; print(framekit.__file__)"], cwd=unpacked)
    assert str(tmp_path / "venv") in where.stdout, where.stdout + where.stderr

    collected = _run([python, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                      "tests"], cwd=unpacked)  # fmt: skip
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    assert " tests collected" in collected.stdout

    subset = [
        "tests/test_codec.py",
        "tests/test_readme.py::test_commands_parse",
        "tests/test_examples.py::test_echo_server_and_client",
        "tests/apps/test_cli.py",
    ]
    ran = _run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *subset],
               cwd=unpacked)  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert " passed" in ran.stdout


def _warnings(stderr: str) -> List[str]:
    return [line for line in stderr.splitlines() if "RuntimeWarning" in line]


def test_a_failed_auto_build_is_an_honest_pure_wheel_and_says_so(
    sdist: Path, tmp_path: Path
) -> None:
    python = _venv(tmp_path / "venv")
    proc = _pip_install(python, sdist, CC="/bin/false", FRAMEKIT_BUILD_EXTENSION="auto")
    assert "filename=framekit-0.1.0-py3-none-any.whl" in proc.stdout, proc.stdout[-3000:]

    imported = _run([python, "-c", "import framekit; print(framekit.BACKEND)"], cwd=tmp_path)
    assert imported.stdout.strip() == "python"
    (warning,) = _warnings(imported.stderr)
    assert (
        "the extensions framekit._speedups and framekit._speedups_text could not be "
        "compiled at install time" in warning
    )
    assert "the compiler /bin/false failed" in warning

    asked = _run([python, "-c", "import framekit"], cwd=tmp_path, env={"FRAMEKIT_PURE_PYTHON": "1"})
    assert asked.stderr == ""  # asked for: no warning

    info = _run([python, "-m", "framekit", "info"], cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert "backend: python: the extensions framekit._speedups and" in info.stdout
    assert "build: extension FAILED to compile with /bin/false" in info.stdout
    assert "(FRAMEKIT_BUILD_EXTENSION=auto)" in info.stdout


def test_a_compiled_install_records_its_compiler(sdist: Path, tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv")
    proc = _pip_install(python, sdist, FRAMEKIT_BUILD_EXTENSION="yes")
    assert "-py3-none-any.whl" not in proc.stdout  # a compiled wheel keeps its platform tags
    info = _run([python, "-m", "framekit", "info"], cwd=tmp_path)
    assert (
        "backend: cython: the compiled extensions framekit._speedups and "
        "framekit._speedups_text loaded" in info.stdout
    )
    assert "build: extension compiled with " in info.stdout
    assert _warnings(info.stderr) == []

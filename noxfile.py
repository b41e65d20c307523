"""Task runner: the README's commands and `.ci/run` go through these sessions."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "tests"]


def _interpreter(version: str) -> str | None:
    """A working ``python<version>``: on PATH, else a pyenv install (its shims may refuse)."""
    candidates = [shutil.which(f"python{version}")]
    pyenv = Path("~/.pyenv/versions").expanduser()
    candidates += sorted(str(path) for path in pyenv.glob(f"{version}*/bin/python3"))
    for candidate in filter(None, candidates):
        try:
            subprocess.run([candidate, "-c", ""], check=True, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            continue
        return candidate
    return None


PYTHON = os.environ.get("CONAAE_NOX_PYTHON") or None  # None: the interpreter running nox
# The newest stack (scvi-tools 1.5, anndata 0.13, mudata 0.4) needs Python >= 3.12; the test
# session takes 3.12 where the machine has it, else the interpreter running nox.
NEWEST = os.environ.get("CONAAE_NOX_PYTHON") or _interpreter("3.12")
# The oldest supported stack: scvi-tools 1.4 with anndata 0.12 and mudata 0.3, on Python 3.11.
OLDEST = os.environ.get("CONAAE_NOX_OLDEST_PYTHON") or _interpreter("3.11")
OLDEST_STACK = ["scvi-tools>=1.4,<1.5", "anndata<0.13", "mudata<0.4"]
# torch is not pinned by the package; CONAAE_TORCH_SPEC lets a machine pick a build
# (e.g. "torch==2.13.0" for a local CPU wheel). Default: whatever pip resolves.
TORCH_SPEC = os.environ.get("CONAAE_TORCH_SPEC", "torch")


def _install(session: nox.Session, extras: str = "", pins: list[str] | None = None) -> None:
    session.install("--upgrade", "pip")
    session.install(TORCH_SPEC)
    session.install(f".{extras}", *(pins or []))
    session.run(
        "python",
        "-c",
        "import sys, scvi, anndata, mudata; print('Python', sys.version.split()[0],"
        " '| scvi-tools', scvi.__version__, '| anndata', anndata.__version__,"
        " '| mudata', mudata.__version__)",
    )


@nox.session(python=NEWEST)
def tests(session: nox.Session) -> None:
    """The test suite on the newest stack (slow and GPU tests deselected; see `slow`)."""
    _install(session, "[test,benchmark]")
    session.run("pytest", "-q", "--durations=15", *session.posargs)


@nox.session(python=OLDEST)
def tests_oldest(session: nox.Session) -> None:
    """The test suite on the oldest supported stack (scvi-tools 1.4, Python 3.11)."""
    _install(session, "[test,benchmark]", OLDEST_STACK)
    session.run("pytest", "-q", "--durations=5", *session.posargs)


@nox.session(python=NEWEST)
def slow(session: nox.Session) -> None:
    """The slow tests: tutorials, benchmark scripts in --quick mode, DDP, the demo command."""
    _install(session, "[test,benchmark]")
    session.run("pytest", "-q", "-m", "slow", "--durations=15", *session.posargs)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Run the whole job on simulated data: train, write .h5mu and a UMAP PNG, print metrics."""
    _install(session)
    session.run("conaae", "demo", "--output", "demo_output", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "noxfile.py")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the Sphinx documentation with warnings as errors, executing the tutorials."""
    _install(session, "[doc]")
    env = {}
    shared = Path(__file__).resolve().parent.parent / "shared" / "data"
    if "CONAAE_DATA_DIR" not in os.environ and shared.is_dir():
        env["CONAAE_DATA_DIR"] = str(shared)  # offline: the tutorials read the local copies
    session.run(
        "sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html", env=env
    )


@nox.session(python=PYTHON)
def benchmark(session: nox.Session) -> None:
    """Run a benchmark script: `nox -s benchmark -- reproduce.py [args]`."""
    _install(session, "[benchmark]")
    script, *args = session.posargs or ["reproduce.py"]
    session.run("python", f"benchmarks/{script}", *args)

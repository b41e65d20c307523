"""Task runner: the README's commands and `.ci/run` go through these sessions."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "tests"]

PYTHON = os.environ.get("CONAAE_NOX_PYTHON") or None  # None: the interpreter running nox
# torch is not pinned by the package; CONAAE_TORCH_SPEC lets a machine pick a build
# (e.g. "torch==2.13.0" for a local CPU wheel). Default: whatever pip resolves.
TORCH_SPEC = os.environ.get("CONAAE_TORCH_SPEC", "torch")


def _install(session: nox.Session, extras: str = "") -> None:
    session.install("--upgrade", "pip")
    session.install(TORCH_SPEC)
    session.install(f".{extras}")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite (fast: slow and GPU tests are deselected; pass -m slow for them)."""
    _install(session, "[test,benchmark]")
    session.run("pytest", "-q", "--durations=15", *session.posargs)


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

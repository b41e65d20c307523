"""One-call workflows, muon-style."""

from ._conaae import conaae

__all__ = ["conaae"]

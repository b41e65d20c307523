"""Sphinx configuration of the conaae-scverse documentation (scverse style)."""

from __future__ import annotations

import os
import shutil
import sys
from datetime import datetime
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))  # the docs also build from a source tree

# -- Tutorials: pulled in from ../tutorials at build time (docs/tutorials/ is gitignored) ----
# They are stored without outputs and executed here, so the pages show the figures. The data
# come from $CONAAE_DATA_DIR (`nox -s docs` points it at ../shared/data when that exists) or
# are downloaded; CONAAE_DOCS_EXECUTE=off builds the pages without running them.
_TUTORIALS = HERE / "tutorials"
_TUTORIALS.mkdir(exist_ok=True)
for _old in _TUTORIALS.glob("*.ipynb"):
    _old.unlink()
for _notebook in sorted((ROOT / "tutorials").glob("*.ipynb")):
    shutil.copy2(_notebook, _TUTORIALS / _notebook.name)

# -- Project information -------------------------------------------------------------------
project = "conaae-scverse"
author = "conaae-scverse developers"
copyright = f"{datetime.now():%Y}, {author}"
try:
    release = metadata.version("conaae-scverse")
except metadata.PackageNotFoundError:  # building from a source tree without installation
    release = "0.0.0"
version = release

# -- General configuration -----------------------------------------------------------------
templates_path = ["_templates"]

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_autodoc_typehints",
    "sphinx_copybutton",
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
# .rst first: autosummary writes its stub pages with the first suffix.
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
master_doc = "index"
nitpicky = False

# autodoc / autosummary
autosummary_generate = True
autodoc_member_order = "bysource"
# Members are listed by the class template (_templates/autosummary/class.rst), own ones only.
autodoc_default_options: dict = {}
autoclass_content = "class"
always_document_param_types = False
typehints_use_signature = False
typehints_use_signature_return = False

# napoleon: numpydoc docstrings
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_include_init_with_doc = False
napoleon_use_rtype = True
napoleon_use_param = True

# No network during the build: sphinx.ext.intersphinx is deliberately not enabled.

# MyST / myst-nb
myst_enable_extensions = ["colon_fence", "dollarmath", "amsmath", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = os.environ.get("CONAAE_DOCS_EXECUTE", "cache")
nb_execution_timeout = 900
nb_execution_raise_on_error = True  # a broken tutorial breaks the docs build
nb_execution_excludepatterns: list[str] = []
nb_merge_streams = True

# -- HTML output ---------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "conaae-scverse"
html_static_path: list[str] = []
html_theme_options = {
    # No public repository yet: no repository button (it would link nowhere).
    "navigation_with_keys": False,
}


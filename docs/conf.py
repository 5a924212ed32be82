"""Sphinx configuration of the grids-sc documentation.

Build (fails on any warning, executes the tutorials):

    .venv/bin/sphinx-build -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

import grids_sc

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

project = "grids-sc"
author = "grids-sc developers"
copyright = "grids-sc developers"
release = grids_sc.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx_autodoc_typehints",
    "sphinx-mathjax-offline",  # MathJax served from the built site: the pages need no network
]

exclude_patterns = ["_build", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# ---- the tutorials live in ../tutorials; Sphinx reads them from docs/tutorials ------------
# Copied only when changed, so unchanged notebooks are neither re-read nor re-executed.
_SRC, _DST = ROOT / "tutorials", DOCS / "tutorials"
_DST.mkdir(exist_ok=True)
for _f in sorted(_SRC.glob("*.md")):
    _t = _DST / _f.name
    if not _t.exists() or not filecmp.cmp(_f, _t, shallow=False):
        shutil.copyfile(_f, _t)  # a fresh mtime, so Sphinx sees the change
for _t in _DST.glob("*.md"):
    if not (_SRC / _t.name).exists():
        _t.unlink()

# ---- notebooks: executed at build, any error fails it ---------------------------------------
nb_execution_mode = "cache"
nb_execution_timeout = 900  # per cell, seconds
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
nb_execution_excludepatterns: list[str] = []

# Tutorials 3 (A549) and 5 (MNIST) read the larger files in ../shared/data, which are not
# shipped with the package. Without them those pages are built unexecuted and say so (the
# ``shared_data`` tag drives an ``{only}`` note on each page).
NEEDS_SHARED = {
    "tutorials/a549_genome_wide.md": "a549_scicar.h5mu",
    "tutorials/mnist.md": "mnist/mnist_5k.csv.gz",
}
_shared = grids_sc.datasets.shared_data_dir()
_missing = [p for p, f in NEEDS_SHARED.items() if _shared is None or not (_shared / f).exists()]
nb_execution_excludepatterns += _missing
if not _missing:
    tags.add("shared_data")  # noqa: F821 - Sphinx injects `tags` into conf.py

myst_enable_extensions = ["amsmath", "colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3

# ---- API reference --------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autoclass_content = "class"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_param = True
typehints_document_rtype = False
always_document_param_types = False

intersphinx_mapping = {}  # no network at build time: cross-references stay within these docs
nitpicky = False

# ---- HTML -----------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = f"grids-sc {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "use_download_button": True,
}

# ---- every public name of the documented namespaces must be on the API page ---------------
API_NAMESPACES = ("pp", "tl", "pl", "get", "io", "datasets", "search", "model", "attribution")


def _check_api_listed(app, config) -> None:
    """Warn (and so fail a ``-W`` build) when a public callable is missing from api.md."""
    import importlib
    import re

    from sphinx.util import logging

    text = (DOCS / "api.md").read_text()
    listed = set(re.findall(r"^\s+(\w+\.\w+)\s*$", text, flags=re.M))
    missing = []
    for ns in API_NAMESPACES:
        try:
            mod = importlib.import_module(f"grids_sc.{ns}")
        except ImportError:
            continue
        for name in getattr(mod, "__all__", []):
            if name.isupper() or not callable(getattr(mod, name)):
                continue  # constants are described in their module's docstring
            if f"{ns}.{name}" not in listed:
                missing.append(f"{ns}.{name}")
    if missing:
        logging.getLogger(__name__).warning(
            "public names not listed in docs/api.md: %s", ", ".join(missing)
        )


def setup(app):
    """Connect the API coverage check."""
    app.connect("config-inited", _check_api_listed)

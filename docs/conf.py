"""Sphinx configuration of the kailash_nb documentation (``make docs``)."""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))

from kailash_nb import __version__  # noqa: E402

project = "kailash_nb"
author = "kailash_nb developers"
copyright = "kailash_nb developers"  # noqa: A001
release = __version__
version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_nb",
    "public_api",
]

exclude_patterns = ["_build", "**/.ipynb_checkpoints", "tutorials/sanitize.cfg"]

# Double backticks are literals in reStructuredText; single ones in docstrings name
# Python objects, as in the docstrings' own convention.
default_role = "py:obj"

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# The tutorials are the notebooks in notebooks/ with the outputs saved by
# `make update-notebooks` and checked by `make test`; the site shows those outputs.
nb_execution_mode = "off"
# The graph widget needs a live kernel: the site shows the static SVG picture each
# widget output carries beside it.
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]

autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# "Attributes:" sections become fields of their class, not attribute entries that would
# describe a dataclass field a second time beside autodoc's own entry.
napoleon_use_ivar = True

html_theme = "pydata_sphinx_theme"
html_title = f"kailash_nb {version}"
html_theme_options = {
    "navigation_with_keys": False,
    "header_links_before_dropdown": 4,
    "show_toc_level": 2,
}

# The API reference: one page per public package, docs/api/<package>.md, each documenting
# its package's __all__ (docs/_ext/public_api.py); the pages are the list of packages.
public_api_packages = sorted(page.stem for page in (DOCS / "api").glob("kailash_nb*.md"))

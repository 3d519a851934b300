"""Sphinx configuration of refsnn's manual: ``python -m sphinx -W --keep-going -c docs . OUT``.

The source folder is the repository root, so that the ``proofs/`` notebooks are rendered
where they are (executed with ``proofs/`` as their working folder, as the tests run them);
only ``docs/`` and ``proofs/`` are read.

The pages are Markdown (MyST); the API reference comes from the numpydoc docstrings
(napoleon); the ``proofs/`` notebooks are executed and rendered with their outputs (myst-nb).
Nothing is fetched from the network: no intersphinx, no link checking.
"""

from __future__ import annotations

import re

import refsnn

project = "refsnn"
author = "the refsnn developers"
copyright = "2026, the refsnn developers"
release = version = refsnn.__version__

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax"]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the docstrings state types and shapes
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "docs/index"
include_patterns = ["docs/**", "proofs/*.ipynb"]
exclude_patterns = ["docs/_build", "docs/_extra", "**.ipynb_checkpoints"]
html_theme = "furo"
html_title = f"refsnn {release}"
html_static_path = []
html_extra_path = ["_extra"]  # index.html at the top of the build: a link to docs/index
# Text as typed: smartquotes would turn ``--per-channel`` in a table cell into an en dash and
# quotes in error messages into curly ones, which a reader cannot copy into a shell
# (docs/check_options.py fails the CI build on such a dash).
smartquotes = False

# The derivation notebooks are executed at build time (CI also runs them as tests), so every
# page shows the outputs of the code as it is.
nb_execution_mode = "force"
nb_execution_timeout = 600
nb_execution_raise_on_error = True


# The docstrings are plain-text numpydoc: shapes such as ``(B, *input_shape)`` and norms such
# as ``|f|`` would read as reST emphasis and substitutions. Escape them for the API pages
# instead of writing the docstrings for reST.
_STAR = re.compile(r"(?<=[(\[,\s])\*(?=\w)")
_BARS = re.compile(r"(?<![|\w])\|(?=[^|\s])([^|\n]*?\S)\|(?![|\w])")


def _escape_text(text):
    return _BARS.sub(r"\\|\1\\|", _STAR.sub(r"\\*", text))


def _escape(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        if ":math:" not in line:
            # only outside ``literals`` (the even pieces between the double backquotes)
            pieces = line.split("``")
            lines[i] = "``".join(_escape_text(p) if k % 2 == 0 else p
                                 for k, p in enumerate(pieces))


def setup(app):
    app.connect("autodoc-process-docstring", _escape)

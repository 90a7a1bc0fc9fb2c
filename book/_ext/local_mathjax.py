"""Sphinx extension: serve MathJax 3 from the built site instead of a CDN.

The book's pages load ``_static/mathjax/tex-chtml.js`` (``mathjax_path`` in
``_config.yml``). This extension copies MathJax's ``es5`` bundle, fonts
included, from the ``django-static-mathjax`` package (a pip-installable copy
of MathJax 3, in the ``book`` extra) into ``_static/mathjax/`` of the HTML
output, so that equations render without network access.
"""

import shutil
from pathlib import Path


def _mathjax_es5_dir():
    import mathjax  # provided by the django-static-mathjax distribution

    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / "tex-chtml.js").is_file():
        raise RuntimeError(f"MathJax bundle not found at {es5}; reinstall django-static-mathjax")
    return es5


def _copy_mathjax(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    shutil.copytree(_mathjax_es5_dir(), target, dirs_exist_ok=True)


def setup(app):
    _mathjax_es5_dir()  # fail early, with a clear message, if MathJax is missing
    app.connect("build-finished", _copy_mathjax)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}

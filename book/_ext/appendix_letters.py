"""Sphinx extension: letter the appendices (A, B, ...) instead of numbering them.

Sphinx numbers the pages of a numbered toctree 1, 2, 3, ... (Jupyter Book's
numbering continues across the parts of ``_toc.yml``). This extension gives
the pages of the part whose caption is ``appendix_caption`` (default
"Appendices") letters instead: its first page becomes "A", its sections
"A.1", "A.2", ..., the second page "B", and so on, in the sidebar, in the page
titles and headings, and in the previous/next links. It only rewrites the
numbers Sphinx has assigned; no LaTeX is involved.
"""

import string

from docutils import nodes
from sphinx import addnodes


def _appendix_docs(env, caption):
    """The docnames listed by the root document's toctree captioned ``caption``."""
    root = env.config.root_doc
    docs = []
    for toctree in env.get_doctree(root).findall(addnodes.toctree):
        if toctree.get("caption") == caption:
            docs += [ref for _title, ref in toctree["entries"] if ref in env.tocs]
    return docs


def _lettered(number, letter):
    if not number:
        return number
    return (letter, *tuple(number)[1:])


def _letter_appendices(app, env):
    docs = _appendix_docs(env, app.config.appendix_caption)
    if len(docs) > len(string.ascii_uppercase):
        raise ValueError(f"more appendices than letters: {len(docs)}")
    for docname, letter in zip(docs, string.ascii_uppercase):
        secnumbers = env.toc_secnumbers.get(docname)
        if not secnumbers:
            continue  # the part is not numbered: nothing to letter
        for anchor, number in secnumbers.items():
            secnumbers[anchor] = _lettered(number, letter)
        for reference in env.tocs[docname].findall(nodes.reference):
            if reference.get("secnumber"):
                reference["secnumber"] = list(_lettered(reference["secnumber"], letter))
        title = env.titles.get(docname)
        if title is not None and title.get("secnumber"):
            title["secnumber"] = list(_lettered(title["secnumber"], letter))
    return []


def setup(app):
    app.add_config_value("appendix_caption", "Appendices", "env")
    # after Sphinx's toctree collector (priority 500) has assigned the numbers
    app.connect("env-get-updated", _letter_appendices, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}

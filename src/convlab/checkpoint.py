"""Moved: the checkpoint format is :mod:`convlab.runs.checkpoint`, the atomic writes :mod:`convlab.runs.files`.

Importing this module raises ImportError naming the new place. It stays for
one release so that an old import fails with directions rather than with
"No module named ..."; then it goes.
"""

raise ImportError("convlab.checkpoint has moved: the checkpoint format, save/load and "
                  "find_latest_checkpoint are in convlab.runs.checkpoint; atomic_savez, "
                  "atomic_write_text and write_atomically are in convlab.runs.files")

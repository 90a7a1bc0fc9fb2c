"""Moved: a run's output folder (fingerprint, manifest, RunFolder) is :mod:`convlab.runs.folder`.

Importing this module raises ImportError naming the new place. It stays for
one release so that an old import fails with directions rather than with
"No module named ..."; then it goes.
"""

raise ImportError("convlab.run_dir has moved to convlab.runs.folder (RunFolder, fingerprint, "
                  "numerics, check_writable, ...); numerics() now takes the kernels' "
                  "build_info() as its argument")

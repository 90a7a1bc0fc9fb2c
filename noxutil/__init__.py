"""Helpers of ``noxfile.py``: the test stages' bookkeeping and the portability checks.

One idea per module:

- ``stages``: a stage as a nox session that records its status, time and pytest's
  counts, the commands it runs (shown and kept), and the closing summary;
- ``debian``: the Debian packages each stage needs (``scripts/debian-packages.txt``);
- ``workspace``: the temporary folder of a run and the copy of the sources in it;
- ``builds``: the extension built with ``setup.py`` into that folder, with a variant's settings;
- ``portability``: what each portability stage builds and checks;
- ``arm64``: the aarch64 run in an arm64 root file system under qemu-user;
- ``wheels``: the manylinux wheel built, repaired, checked and tested installed.
"""

"""Importing the fast layers without the compiled kernels says how to build them."""

import subprocess
import sys

# Hide the compiled modules of convlab._fast, as if the extension had never
# been built, then import the fast layers.
SCRIPT = r"""
import importlib.abc
import sys


class NoKernels(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.startswith("convlab._fast."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoKernels())
import convlab.fast_layers
"""


def test_importing_without_the_compiled_kernels_explains_how_to_build_them():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: convlab.fast_layers needs the compiled kernels"), done.stderr
    assert "pip install -e ." in last and "python setup.py build_ext --inplace" in last, last
    assert "bn_act" in last, last   # the module that could not be imported

"""Build the Cython kernels in ``src/convlab/_fast/``.

Everything else about the package lives in ``pyproject.toml``; this file only
declares the compiled extensions, so that ``pip install .`` and
``pip install -e .`` compile them without a separate ``build_ext`` step.
Every ``src/convlab/_fast/*.pyx`` becomes the module ``convlab._fast.<name>``,
compiled with OpenMP.
"""

from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

FAST_DIR = Path("src", "convlab", "_fast")

extensions = [
    Extension(
        f"convlab._fast.{pyx.stem}",
        [str(pyx)],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3", "-march=native", "-fopenmp"],
        extra_link_args=["-fopenmp"],
    )
    for pyx in sorted(FAST_DIR.glob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )
)

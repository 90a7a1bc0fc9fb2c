"""Print how convlab's fast kernels were built and which SIMD path they take here.

Usage::

    python -m convlab.info

The same facts as a dict: :func:`convlab.fast_layers.build_info`.
"""

import sys

import numpy as np

import convlab
from convlab.fast_layers import build_info


def format_build_info(info=None):
    """The lines ``python -m convlab.info`` prints, as one string.

    Parameters
    ----------
    info : dict, optional
        As returned by :func:`convlab.fast_layers.build_info` (default: now).
    """
    info = build_info() if info is None else info
    openmp = (f"on (version {info['openmp_version']}), {info['threads']} threads"
              if info["openmp"] else "off (the kernels run on one thread)")
    return "\n".join([
        f"convlab {convlab.__version__}, NumPy {np.__version__}, Python {sys.version.split()[0]}",
        f"machine:   {info['machine']}",
        f"SIMD path: {info['simd_path']} (this CPU can run: {', '.join(info['simd_paths'])})",
        f"OpenMP:    {openmp}",
        f"compiler:  {info['compiler']}",
    ] + (["note:      a test build: its avx512 kernels are compiled for AVX2"]
         if info.get("avx512_on_avx2") else []))


def main():
    print(format_build_info())


if __name__ == "__main__":
    main()

"""Build the Cython kernels in ``src/convlab/_fast/``.

Everything else about the package lives in ``pyproject.toml``; this file only
declares the compiled extensions, so that ``pip install .`` and
``pip install -e .`` compile them without a separate ``build_ext`` step.
Every ``src/convlab/_fast/*.pyx`` becomes the module ``convlab._fast.<name>``.

The compiler flags are decided in one place, :func:`compile_flags`, when the
compiler is known:

* no ``-march=native``: the modules are compiled for the baseline of the
  target (x86-64 or arm64), and the AVX2 kernels are separate functions
  chosen at run time (see ``src/convlab/_fast/simd.h``), so a wheel built on
  one machine runs on every other.  ``CONVLAB_NATIVE=1`` compiles for this
  machine's CPU instead (``-march=native``, ``-mcpu=native`` on arm64);
* OpenMP if the compiler can build and link an OpenMP program
  (``CONVLAB_OPENMP=auto``, the default): ``-fopenmp`` for GCC and Clang,
  ``/openmp`` for MSVC, and on macOS also ``-Xpreprocessor -fopenmp -lomp``
  with a Homebrew or conda ``libomp``.  Without it the kernels run on one
  thread, with a warning.  ``CONVLAB_OPENMP=1`` makes missing OpenMP an
  error, ``CONVLAB_OPENMP=0`` builds without it;
* ``CONVLAB_SANITIZE=1`` (GCC and Clang) builds a memory-checking copy for
  the tests: AddressSanitizer and UndefinedBehaviorSanitizer, ``-O1`` without
  debug information (the usual optimisation for sanitizers, and a quicker
  build).  Such modules need the ASan runtime preloaded into Python;
  ``nox -s sanitize`` builds and runs one;
* ``CONVLAB_AVX512_ON_AVX2=1`` (GCC and Clang) builds a copy for the tests
  whose AVX-512 kernels are compiled for AVX2, so that the wide tiles can be
  tested on a CPU without AVX-512 (``nox -s avx512-on-avx2``); never for
  use, as that path is slower than AVX2 there.
"""

import os
import platform
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

FAST_DIR = Path("src", "convlab", "_fast")

# Per module, flags on top of the common ones (GCC/Clang spelling, MSVC spelling).
# bn_act's float32 rows need reassociation for the compiler to vectorise their sums.
MODULE_FLAGS = {
    "bn_act": (["-fno-math-errno", "-ffinite-math-only", "-fno-trapping-math",
                "-fno-signed-zeros", "-fassociative-math", "-freciprocal-math"],
               ["/fp:fast"]),
}

OPENMP_TEST = textwrap.dedent("""\
    #include <omp.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return n > 0 && omp_get_max_threads() > 0 ? 0 : 1;
    }
    """)


def _setting(name, choices, default):
    value = os.environ.get(name, default).strip().lower()
    if value not in choices:
        raise SystemExit(f"error: {name}={value!r}; use one of {', '.join(choices)}")
    return value


def _libomp_prefixes():
    """Where Homebrew or conda may have put libomp (macOS)."""
    prefixes = [os.environ.get("CONDA_PREFIX"), "/opt/homebrew/opt/libomp", "/usr/local/opt/libomp"]
    return [p for p in prefixes if p and Path(p, "include", "omp.h").exists()]


def _openmp_candidates(compiler_type):
    """(compile args, link args) to try, in order."""
    if compiler_type == "msvc":
        return [(["/openmp"], [])]
    candidates = [(["-fopenmp"], ["-fopenmp"])]
    if sys.platform == "darwin":  # Apple clang: OpenMP through the preprocessor and libomp
        for prefix in _libomp_prefixes():
            candidates.append(([ "-Xpreprocessor", "-fopenmp", f"-I{prefix}/include"],
                               [f"-L{prefix}/lib", "-lomp", f"-Wl,-rpath,{prefix}/lib"]))
    return candidates


def _compiles_and_links(compiler, source, compile_args, link_args):
    """Whether ``compiler`` builds and links ``source`` with these flags (output hidden)."""
    tmp = tempfile.mkdtemp(prefix="convlab-check-")
    try:
        src = Path(tmp, "check.c")
        src.write_text(source)
        devnull = os.open(os.devnull, os.O_WRONLY)
        saved = os.dup(1), os.dup(2)
        os.dup2(devnull, 1), os.dup2(devnull, 2)
        try:
            objects = compiler.compile([str(src)], output_dir=tmp, extra_postargs=compile_args)
            compiler.link_executable(objects, "check", output_dir=tmp, extra_postargs=link_args)
            return True
        except Exception:
            return False
        finally:
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(devnull), os.close(saved[0]), os.close(saved[1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compile_flags(compiler):
    """The flags of every extension module: (compile args, link args, OpenMP on?)."""
    msvc = compiler.compiler_type == "msvc"
    compile_args = ["/O2"] if msvc else ["-O3"]
    link_args = []
    if _setting("CONVLAB_SANITIZE", ("0", "1"), "0") == "1":
        if msvc:
            raise SystemExit("error: CONVLAB_SANITIZE=1 needs GCC or Clang")
        sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                    "-fno-omit-frame-pointer"]
        compile_args = ["-O1", "-g0"] + sanitize
        link_args = sanitize
    if _setting("CONVLAB_AVX512_ON_AVX2", ("0", "1"), "0") == "1":
        if msvc:
            raise SystemExit("error: CONVLAB_AVX512_ON_AVX2=1 needs GCC or Clang")
        compile_args.append("-DCONVLAB_AVX512_ON_AVX2")
    if _setting("CONVLAB_NATIVE", ("0", "1"), "0") == "1" and not msvc:
        arm = platform.machine().lower() in ("arm64", "aarch64")
        compile_args.append("-mcpu=native" if arm else "-march=native")
    openmp = False
    mode = _setting("CONVLAB_OPENMP", ("auto", "1", "0"), "auto")
    if mode != "0":
        for omp_compile, omp_link in _openmp_candidates(compiler.compiler_type):
            if _compiles_and_links(compiler, OPENMP_TEST, omp_compile, omp_link):
                compile_args += omp_compile
                link_args += omp_link
                openmp = True
                break
        if not openmp:
            message = ("OpenMP was not found: this compiler cannot build and link an OpenMP "
                       "program (on macOS: `brew install libomp`)")
            if mode == "1":
                raise SystemExit(f"error: CONVLAB_OPENMP=1, but {message}")
            print(f"warning: {message}; convlab's kernels will run on one thread "
                  "(set CONVLAB_OPENMP=0 to silence this)", file=sys.stderr)
    return compile_args, link_args, openmp


class BuildKernels(build_ext):
    """``build_ext`` that decides the compiler flags once the compiler is known."""

    def build_extensions(self):
        compile_args, link_args, openmp = compile_flags(self.compiler)
        msvc = self.compiler.compiler_type == "msvc"
        for ext in self.extensions:
            module = ext.name.rsplit(".", 1)[-1]
            extra = MODULE_FLAGS.get(module, ([], []))[1 if msvc else 0]
            ext.extra_compile_args = compile_args + extra
            ext.extra_link_args = link_args
        print(f"convlab: compiling the kernels with {' '.join(compile_args)} "
              f"(OpenMP {'on' if openmp else 'off'})")
        super().build_extensions()


extensions = [
    Extension(
        f"convlab._fast.{pyx.stem}",
        [str(pyx)],
        include_dirs=[np.get_include(), str(FAST_DIR)],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        depends=[str(h) for h in sorted(FAST_DIR.glob("*.h")) + sorted(FAST_DIR.glob("*.pxd"))],
    )
    for pyx in sorted(FAST_DIR.glob("*.pyx"))
]

setup(
    cmdclass={"build_ext": BuildKernels},
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
)

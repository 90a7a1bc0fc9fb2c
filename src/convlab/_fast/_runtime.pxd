# cython: language_level=3
# The run-time state that every kernel module shares (see _runtime.pyx).

from convlab._fast.omp_compat cimport convlab_share_forked_child
from convlab._fast.simd cimport convlab_share_simd_path

cdef const int *simd_path_state() noexcept nogil
cdef const int *forked_child_state() noexcept nogil


cdef inline void share_runtime_state() noexcept:
    """Point this module's copies of simd.h and omp_compat.h at the shared state.

    Every kernel module calls it once, when it is imported.
    """
    convlab_share_simd_path(simd_path_state())
    convlab_share_forked_child(forked_child_state())

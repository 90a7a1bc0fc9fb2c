# Declarations of omp_compat.h for Cython: OpenMP's thread count (or a
# one-thread stand-in without OpenMP) and the shared fork flag.

cdef extern from "omp_compat.h":
    int CONVLAB_OPENMP
    int omp_get_max_threads() noexcept nogil
    void convlab_share_forked_child(const int *state) noexcept nogil
    int convlab_in_forked_child() noexcept nogil

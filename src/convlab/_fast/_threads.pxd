# cython: language_level=3
"""How many OpenMP threads a kernel should use: shared by every kernel module."""

from convlab._fast.omp_compat cimport convlab_in_forked_child, omp_get_max_threads


cdef inline int pick_threads(double work, double work_per_thread, int num_threads) noexcept nogil:
    """Threads to use: ``num_threads`` if positive, else the OpenMP default
    (``OMP_NUM_THREADS`` or the number of cores) capped at one thread per
    ``work_per_thread`` units of work.  Waking an idle thread costs from
    microseconds to, on a busy machine, milliseconds, so small problems run
    on the calling thread alone.

    Always 1 in a child process made by ``fork()``: GNU libgomp's thread
    pool does not survive a fork, and a region of two threads would wait
    for it forever (see ``omp_compat.h``).
    """
    cdef int most
    if convlab_in_forked_child():
        return 1
    if num_threads > 0:
        return num_threads
    most = omp_get_max_threads()
    if work < most * work_per_thread:
        most = <int>(work / work_per_thread)
    return most if most > 1 else 1


cdef inline int all_threads() noexcept nogil:
    """The OpenMP default (``OMP_NUM_THREADS`` or the number of cores); 1 in a forked child."""
    if convlab_in_forked_child():
        return 1
    return omp_get_max_threads()

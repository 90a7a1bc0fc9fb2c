# Declarations of pool_kernels.h for Cython: one output row of 2x2 stride-2
# max pooling (pool.pyx).

cdef extern from "pool_kernels.h":
    void convlab_pool2x2_row_s(const float *r0, const float *r1, float *o, unsigned char *a,
                               Py_ssize_t n) noexcept nogil
    void convlab_pool2x2_row_d(const double *r0, const double *r1, double *o, unsigned char *a,
                               Py_ssize_t n) noexcept nogil

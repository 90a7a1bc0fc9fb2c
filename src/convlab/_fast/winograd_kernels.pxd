# Declarations of winograd_kernels.h for Cython: Winograd's input and output
# transforms and the copies of NR tiles side by side (winograd.pyx).  `tile`
# is m, the output tile: 2 for F(2x2, 3x3), 4 for F(4x4, 3x3).

cdef extern from "winograd_kernels.h":
    void convlab_wino_gather_row_s(int tile, const float *src, Py_ssize_t ld, float *d) noexcept nogil
    void convlab_wino_gather_row_d(int tile, const double *src, Py_ssize_t ld, double *d) noexcept nogil
    void convlab_wino_scatter_row_s(int tile, const float *y, float *dst, Py_ssize_t ld) noexcept nogil
    void convlab_wino_scatter_row_d(int tile, const double *y, double *dst, Py_ssize_t ld) noexcept nogil
    void convlab_wino_input_s(int tile, const float *d, float *v, Py_ssize_t vstride) noexcept nogil
    void convlab_wino_input_d(int tile, const double *d, double *v, Py_ssize_t vstride) noexcept nogil
    void convlab_wino_output_s(int tile, const float *m, Py_ssize_t mstride, float bias, float *y,
                               float *finite) noexcept nogil
    void convlab_wino_output_d(int tile, const double *m, Py_ssize_t mstride, double bias, double *y,
                               double *finite) noexcept nogil

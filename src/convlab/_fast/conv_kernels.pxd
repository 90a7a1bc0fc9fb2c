# Declarations of conv_kernels.h for Cython: the GEMM micro-kernels of the
# direct convolution (conv.pyx) and of Winograd's (winograd.pyx).
#
# A tile is MR x NR (the constants).  The direct convolution's tile (the *_tile functions)
# is NR = convlab_s_nr() floats or convlab_d_nr() doubles wide, which
# depends on the SIMD path: 16 floats or 8 doubles, twice that on the
# AVX-512 path.  The 6x16 / 6x8 functions, which Winograd's products use,
# keep the narrow tile on every path, as do the dw_6x16 / dw_6x8 functions
# that the weight gradient takes for few filters.

cdef extern from "conv_kernels.h":
    enum:
        CONVLAB_MR  # rows of a tile (filters)
        CONVLAB_S_NR  # columns of the narrow tile: floats
        CONVLAB_D_NR  # doubles
        CONVLAB_MAX_NR  # columns of the widest tile (floats on the AVX-512 path)
    Py_ssize_t convlab_s_nr() noexcept nogil
    Py_ssize_t convlab_d_nr() noexcept nogil
    void convlab_sgemm_tile(Py_ssize_t kc, const float *A, const float *B, float *C,
                            Py_ssize_t ldc, int accumulate) noexcept nogil
    void convlab_dgemm_tile(Py_ssize_t kc, const double *A, const double *B, double *C,
                            Py_ssize_t ldc, int accumulate) noexcept nogil
    void convlab_sgemm_tile_rows(Py_ssize_t kc, const float *A, const float *base,
                                 const Py_ssize_t *off, float *C, Py_ssize_t ldc,
                                 int accumulate) noexcept nogil
    void convlab_dgemm_tile_rows(Py_ssize_t kc, const double *A, const double *base,
                                 const Py_ssize_t *off, double *C, Py_ssize_t ldc,
                                 int accumulate) noexcept nogil
    void convlab_sgemm_dw_tile(Py_ssize_t nrows, Py_ssize_t ncols, const float *base,
                               const Py_ssize_t *off, Py_ssize_t ld, const float *B, float *C,
                               Py_ssize_t ldc, int accumulate) noexcept nogil
    void convlab_dgemm_dw_tile(Py_ssize_t nrows, Py_ssize_t ncols, const double *base,
                               const Py_ssize_t *off, Py_ssize_t ld, const double *B, double *C,
                               Py_ssize_t ldc, int accumulate) noexcept nogil
    void convlab_transpose_8x8_ps(const float *base, const Py_ssize_t *off, float *dst,
                                  Py_ssize_t ldd) noexcept nogil
    void convlab_transpose_4x4_pd(const double *base, const Py_ssize_t *off, double *dst,
                                  Py_ssize_t ldd) noexcept nogil
    void convlab_sgemm_dw_6x16(Py_ssize_t nrows, Py_ssize_t ncols, const float *base,
                               const Py_ssize_t *off, Py_ssize_t ld, const float *B, float *C,
                               Py_ssize_t ldc, int accumulate) noexcept nogil
    void convlab_dgemm_dw_6x8(Py_ssize_t nrows, Py_ssize_t ncols, const double *base,
                              const Py_ssize_t *off, Py_ssize_t ld, const double *B, double *C,
                              Py_ssize_t ldc, int accumulate) noexcept nogil
    void convlab_sgemm_6x16(Py_ssize_t kc, const float *A, const float *B, float *C,
                            Py_ssize_t ldc, int accumulate) noexcept nogil
    void convlab_dgemm_6x8(Py_ssize_t kc, const double *A, const double *B, double *C,
                           Py_ssize_t ldc, int accumulate) noexcept nogil

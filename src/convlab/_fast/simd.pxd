# Declarations of simd.h for Cython: the SIMD paths, which of them this CPU
# runs, how the module was compiled, and the pointer to the one shared path.

cdef extern from "simd.h":
    int CONVLAB_PATH_PLAIN
    int CONVLAB_PATH_PORTABLE
    int CONVLAB_PATH_AVX2
    int CONVLAB_PATH_AVX512
    int convlab_simd_path_available(int path) noexcept nogil
    void convlab_share_simd_path(const int *state) noexcept nogil
    const char *CONVLAB_COMPILER
    int CONVLAB_AVX512_ON_AVX2_BUILD

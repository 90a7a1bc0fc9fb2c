# Declarations of bn_act_kernels.h for Cython: the float32 rows of the fused
# batch norm + activation (bn_act.pyx).

cdef extern from "bn_act_kernels.h":
    void convlab_act_row(const float* x, float* out, Py_ssize_t n, float g, float b,
                         int act, float alpha) noexcept nogil
    void convlab_dact_row(const float* dout, const float* x, float* dy, Py_ssize_t n,
                          float g, float b, int act, float alpha) noexcept nogil
    void convlab_dot_row(const float* dy, const float* x, Py_ssize_t n, float m,
                         double* sdy, double* sdyx) noexcept nogil

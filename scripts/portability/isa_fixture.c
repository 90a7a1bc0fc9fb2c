/* Fixture for check_isa.py --selftest: one AVX2+FMA function selected at run
 * time and one plain function. Built with plain -O3 the checker must pass it
 * (and see AVX in foo_avx2); built with -mavx2 the plain function is
 * vectorised with ymm registers and the checker must fail it. */
#include <immintrin.h>

__attribute__((target("avx2,fma")))
void foo_avx2(float *y, const float *a, const float *x, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i));
        _mm256_storeu_ps(y + i, v);
    }
    for (; i < n; i++) y[i] += a[i] * x[i];
}

void foo_plain(float *y, const float *a, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += a[i] * x[i];
}

void foo(float *y, const float *a, const float *x, int n) {
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        foo_avx2(y, a, x, n);
    else
        foo_plain(y, a, x, n);
}

/* OpenMP when the module was compiled with it, one thread when it was not.
 *
 * The kernels' loops are Cython `prange`s: without OpenMP they compile to
 * ordinary loops.  Only the few OpenMP library calls need a stand-in, so
 * that a build without OpenMP (Apple's clang without libomp, say) loads and
 * runs on one thread instead of failing at import with an undefined symbol.
 */
#ifndef CONVLAB_OMP_COMPAT_H
#define CONVLAB_OMP_COMPAT_H

#ifdef _OPENMP
#include <omp.h>
#define CONVLAB_OPENMP _OPENMP /* the version, as yyyymm */
#else
#define CONVLAB_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
#endif

#endif /* CONVLAB_OMP_COMPAT_H */

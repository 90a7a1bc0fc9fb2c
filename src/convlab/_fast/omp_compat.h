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

/* Fork safety.  GNU libgomp keeps its pool of worker threads across fork(),
 * but the child has only the thread that called fork: the first parallel
 * region of two or more threads in the child waits for workers that do not
 * exist, forever.  A region of one thread never touches the pool, so a
 * child runs every kernel on one thread.  Whether this process is such a
 * child is one int for all the kernel modules, owned by
 * convlab._fast._runtime (which sets it from os.register_at_fork); each
 * module points its copy of this header at it when it is imported, as it
 * does for the SIMD path (simd.h).
 */
static const int convlab_forked_child_unshared = 0;
static const int *convlab_forked_child_state = &convlab_forked_child_unshared;
static inline void convlab_share_forked_child(const int *state) { convlab_forked_child_state = state; }
static inline int convlab_in_forked_child(void) { return *convlab_forked_child_state; }

#endif /* CONVLAB_OMP_COMPAT_H */

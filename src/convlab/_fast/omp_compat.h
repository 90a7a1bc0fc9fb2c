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
 * child runs every kernel on one thread.  Each kernel module registers
 * convlab_mark_forked_child with os.register_at_fork (one flag per module:
 * this header is compiled into each of them).
 */
static int convlab_forked_child = 0;
static inline void convlab_mark_forked_child(void) { convlab_forked_child = 1; }
static inline int convlab_in_forked_child(void) { return convlab_forked_child; }

#endif /* CONVLAB_OMP_COMPAT_H */

/* Which instruction set the kernels run on: chosen at import, from the CPU.
 *
 * A kernel with SIMD comes in up to four versions, one per path, each a
 * function named for it (`<kernel>_plain`, `<kernel>_portable`,
 * `<kernel>_avx2`, `<kernel>_avx512`), all summing the same products in the
 * same order per output element:
 *
 *   CONVLAB_PATH_PLAIN     plain C loops: the readable reference, whatever
 *                          the compiler makes of them;
 *   CONVLAB_PATH_PORTABLE  GCC/Clang vector extensions: written once with
 *                          16-byte vectors, compiled for the baseline of the
 *                          target (SSE2 on x86-64, NEON on arm64), so it runs
 *                          on every CPU the module can be loaded on.  Where
 *                          the compiler already vectorises the plain loops
 *                          (batch norm's rows, Winograd's transforms) or
 *                          there is nothing to vectorise (the transposes of
 *                          conv_kernels.h), `<kernel>_portable` is the
 *                          plain version under a second name;
 *   CONVLAB_PATH_AVX2      AVX2 + FMA, in functions compiled for those
 *                          instructions only (target attribute), so the
 *                          rest of the module stays baseline code;
 *   CONVLAB_PATH_AVX512    the direct convolution's GEMM micro-kernels with
 *                          64-byte vectors (AVX-512F, GCC/Clang vector
 *                          extensions), on tiles twice as wide; every other
 *                          kernel takes its AVX2 version on this path, since
 *                          a CPU with AVX-512 has AVX2.
 *
 * CONVLAB_DISPATCH below calls the version of the current path.  The module
 * is never compiled for the build machine's CPU (no -march=native unless
 * asked for), so a wheel built anywhere runs everywhere, and the AVX2
 * functions are called only after the CPU (and the operating system, which
 * must save the 256-bit registers) has been asked whether it supports them.
 * The current path is one int for all the kernel modules (see "The path the
 * kernels take now" below).
 */
#ifndef CONVLAB_SIMD_H
#define CONVLAB_SIMD_H

#define CONVLAB_PATH_PLAIN 0
#define CONVLAB_PATH_PORTABLE 1
#define CONVLAB_PATH_AVX2 2
#define CONVLAB_PATH_AVX512 3

/* Vector extensions (typedef float v __attribute__((vector_size(16)))) are a
 * GCC and Clang feature; MSVC has none, so its portable path is the plain one. */
#if defined(__GNUC__) || defined(__clang__)
#define CONVLAB_HAVE_VECTOR_EXT 1
#endif

/* The AVX2 functions exist only when compiling for x86-64 with a compiler
 * that can compile intrinsics for a single function: GCC and Clang with the
 * target attribute, MSVC always (it accepts any intrinsic in any function). */
#if (defined(__x86_64__) || defined(_M_X64)) && !defined(CONVLAB_NO_AVX2)
#if defined(__GNUC__) || defined(__clang__)
#define CONVLAB_HAVE_AVX2 1
#define CONVLAB_TARGET_AVX2 __attribute__((target("avx2,fma")))
#include <immintrin.h>
#elif defined(_MSC_VER)
#define CONVLAB_HAVE_AVX2 1
#define CONVLAB_TARGET_AVX2
#include <immintrin.h>
#include <intrin.h>
#endif
#endif

/* The AVX-512 kernels are written with GCC/Clang vector extensions (64-byte
 * vectors), so they exist where the AVX2 ones do, except under MSVC.
 *
 * A test build (setup.py with CONVLAB_AVX512_ON_AVX2=1) compiles the very
 * same functions for AVX2 + FMA instead: the compiler splits each 64-byte
 * vector into two 32-byte ones, the arithmetic stays the same, and the
 * path counts as available wherever AVX2 is.  That is how the wide tiles
 * and everything around them are tested on a CPU without AVX-512 (see
 * scripts/check-portability.sh, stage avx512-on-avx2); on such a build the
 * path is slower than AVX2, never faster. */
#if defined(CONVLAB_HAVE_AVX2) && (defined(__GNUC__) || defined(__clang__)) && !defined(CONVLAB_NO_AVX512)
#define CONVLAB_HAVE_AVX512 1
#ifdef CONVLAB_AVX512_ON_AVX2
#define CONVLAB_TARGET_AVX512 __attribute__((target("avx2,fma")))
#else
#define CONVLAB_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#endif
#endif

/* Does this CPU run AVX2 and FMA instructions, with the OS saving ymm registers? */
static inline int convlab_cpu_has_avx2_fma(void)
{
#if defined(CONVLAB_HAVE_AVX2) && (defined(__GNUC__) || defined(__clang__))
    /* libgcc / compiler-rt read CPUID and XGETBV: avx2 is reported only if
     * the OS has enabled the AVX state. */
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#elif defined(CONVLAB_HAVE_AVX2) && defined(_MSC_VER)
    int r[4];
    __cpuid(r, 0);
    if (r[0] < 7)
        return 0;
    __cpuid(r, 1);
    /* ecx bit 12 FMA, bit 27 OSXSAVE, bit 28 AVX */
    if (((r[2] >> 12) & 1) == 0 || ((r[2] >> 27) & 1) == 0 || ((r[2] >> 28) & 1) == 0)
        return 0;
    if ((_xgetbv(0) & 6) != 6) /* the OS saves xmm and ymm state */
        return 0;
    __cpuidex(r, 7, 0);
    return (r[1] >> 5) & 1; /* ebx bit 5 AVX2 */
#else
    return 0;
#endif
}

/* Does this CPU run AVX-512F, with the OS saving the zmm and mask registers?
 * (libgcc and compiler-rt report avx512f only when XGETBV says so.) */
static inline int convlab_cpu_has_avx512f(void)
{
#if defined(CONVLAB_HAVE_AVX512) && defined(CONVLAB_AVX512_ON_AVX2)
    return convlab_cpu_has_avx2_fma();
#elif defined(CONVLAB_HAVE_AVX512)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && convlab_cpu_has_avx2_fma();
#else
    return 0;
#endif
}

/* Can path `p` run here?  Plain always; portable always (on a compiler
 * without vector extensions it is the plain code); AVX2 and AVX-512 if
 * compiled in and the CPU has them. */
static inline int convlab_simd_path_available(int p)
{
    switch (p) {
    case CONVLAB_PATH_PLAIN:
    case CONVLAB_PATH_PORTABLE:
        return 1;
    case CONVLAB_PATH_AVX2:
#ifdef CONVLAB_HAVE_AVX2
        return convlab_cpu_has_avx2_fma();
#else
        return 0;
#endif
    case CONVLAB_PATH_AVX512:
        return convlab_cpu_has_avx512f();
    default:
        return 0;
    }
}

/* The path the kernels take now.  It is one int for all the kernel modules,
 * owned by convlab._fast._runtime, which sets it at import (CONVLAB_SIMD, else
 * the fastest path this CPU runs) and in set_simd_path.  Each extension
 * module compiles this header on its own, with its own pointer: the module
 * points it at that int when it is imported (share_runtime_state in
 * _runtime.pxd), so that a path chosen once reaches every kernel at once.
 * Until then it points at the plain path. */
static const int convlab_simd_path_unshared = CONVLAB_PATH_PLAIN;
static const int *convlab_simd_path_state = &convlab_simd_path_unshared;
#define CONVLAB_SIMD_PATH (*convlab_simd_path_state)

static inline void convlab_share_simd_path(const int *state) { convlab_simd_path_state = state; }

/* The dispatch: call the version of kernel NAME that the current path
 * takes, with the arguments ARGS (in parentheses), as one statement.
 *
 *   CONVLAB_DISPATCH(NAME, ARGS)         NAME##_avx2 on the AVX2 and the
 *                                        AVX-512 paths, NAME##_portable on
 *                                        the portable path, NAME##_plain on
 *                                        the plain path;
 *   CONVLAB_DISPATCH_AVX512(NAME, ARGS)  the same, but NAME##_avx512 on the
 *                                        AVX-512 path (the convolution's
 *                                        wide tiles).
 *
 * A version that is not compiled in is skipped: without AVX2 functions (not
 * x86-64, or CONVLAB_NO_AVX2) its paths are never available; without vector
 * extensions (MSVC) the portable path takes the plain version. */
#ifdef CONVLAB_HAVE_AVX512
#define CONVLAB_IF_AVX512(NAME, ARGS) if (CONVLAB_SIMD_PATH == CONVLAB_PATH_AVX512) NAME##_avx512 ARGS; else
#else
#define CONVLAB_IF_AVX512(NAME, ARGS)
#endif
#ifdef CONVLAB_HAVE_AVX2
#define CONVLAB_IF_AVX2(NAME, ARGS) if (CONVLAB_SIMD_PATH >= CONVLAB_PATH_AVX2) NAME##_avx2 ARGS; else
#else
#define CONVLAB_IF_AVX2(NAME, ARGS)
#endif
#ifdef CONVLAB_HAVE_VECTOR_EXT
#define CONVLAB_IF_PORTABLE(NAME, ARGS) if (CONVLAB_SIMD_PATH >= CONVLAB_PATH_PORTABLE) NAME##_portable ARGS; else
#else
#define CONVLAB_IF_PORTABLE(NAME, ARGS)
#endif
#define CONVLAB_DISPATCH(NAME, ARGS) CONVLAB_IF_AVX2(NAME, ARGS) CONVLAB_IF_PORTABLE(NAME, ARGS) NAME##_plain ARGS;
#define CONVLAB_DISPATCH_AVX512(NAME, ARGS) CONVLAB_IF_AVX512(NAME, ARGS) CONVLAB_DISPATCH(NAME, ARGS)

/* A dispatching function is compiled into every module that includes its
 * header, also one that calls only some of them (winograd.pyx uses two of
 * conv_kernels.h's): the others are no warning. */
#if defined(__GNUC__) || defined(__clang__)
#define CONVLAB_DISPATCHER static __attribute__((unused))
#else
#define CONVLAB_DISPATCHER static
#endif

/* The compiler that built this module, for convlab.build_info(). */
#if defined(__clang__)
#define CONVLAB_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define CONVLAB_COMPILER "gcc " __VERSION__
#elif defined(_MSC_VER)
#define CONVLAB_STR2(x) #x
#define CONVLAB_STR(x) CONVLAB_STR2(x)
#define CONVLAB_COMPILER "msvc " CONVLAB_STR(_MSC_FULL_VER)
#else
#define CONVLAB_COMPILER "unknown"
#endif

/* 1 in the test build whose AVX-512 kernels are compiled for AVX2 (above). */
#ifdef CONVLAB_AVX512_ON_AVX2
#define CONVLAB_AVX512_ON_AVX2_BUILD 1
#else
#define CONVLAB_AVX512_ON_AVX2_BUILD 0
#endif

#endif /* CONVLAB_SIMD_H */

/* Which instruction set the kernels run on: chosen once, at import, from the CPU.
 *
 * A kernel with SIMD comes in up to three versions, all summing the same
 * products in the same order per output element:
 *
 *   CONVLAB_PATH_PLAIN     plain C loops: the readable reference, whatever
 *                          the compiler makes of them;
 *   CONVLAB_PATH_PORTABLE  GCC/Clang vector extensions: written once with
 *                          16-byte vectors, compiled for the baseline of the
 *                          target (SSE2 on x86-64, NEON on arm64), so it runs
 *                          on every CPU the module can be loaded on;
 *   CONVLAB_PATH_AVX2      AVX2 + FMA intrinsics in functions compiled for
 *                          those instructions only (target attribute), so the
 *                          rest of the module stays baseline code;
 *   CONVLAB_PATH_AVX512    the convolution's GEMM micro-kernels with 64-byte
 *                          vectors (AVX-512F, GCC/Clang vector extensions),
 *                          on wider tiles; every other kernel takes its AVX2
 *                          version on this path, since a CPU with AVX-512
 *                          has AVX2.
 *
 * The module is never compiled for the build machine's CPU (no -march=native
 * unless asked for), so a wheel built anywhere runs everywhere, and the AVX2
 * functions are called only after the CPU (and the operating system, which
 * must save the 256-bit registers) has been asked whether it supports them.
 * Each extension module includes this header once and keeps its own copy of
 * the chosen path in `convlab_simd_path`.
 */
#ifndef CONVLAB_SIMD_H
#define CONVLAB_SIMD_H

#define CONVLAB_PATH_PLAIN 0
#define CONVLAB_PATH_PORTABLE 1
#define CONVLAB_PATH_AVX2 2
#define CONVLAB_PATH_AVX512 3

/* The AVX2 kernels run on the AVX2 and the AVX-512 paths. */
#define CONVLAB_USE_AVX2 (convlab_simd_path >= CONVLAB_PATH_AVX2)

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
static int convlab_cpu_has_avx2_fma(void)
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
static int convlab_cpu_has_avx512f(void)
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
static int convlab_simd_path_available(int p)
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

/* The path this module's kernels take; set at import (see _runtime.pxi). */
static int convlab_simd_path = CONVLAB_PATH_PLAIN;

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
static const char *convlab_compiler = CONVLAB_COMPILER;

/* 1 in the test build whose AVX-512 kernels are compiled for AVX2 (above). */
#ifdef CONVLAB_AVX512_ON_AVX2
static const int convlab_avx512_on_avx2 = 1;
#else
static const int convlab_avx512_on_avx2 = 0;
#endif

#endif /* CONVLAB_SIMD_H */

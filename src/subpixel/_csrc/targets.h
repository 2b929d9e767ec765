/* The x86 targets of the kernels' SIMD copies (GCC/Clang function attributes: each copy is
 * compiled for its instruction set inside an otherwise baseline module; isa.h picks one at
 * run time). HAVE_X86 is 0 on other compilers and CPUs, which get the portable copies. */
#ifndef SUBPIXEL_TARGETS_H
#define SUBPIXEL_TARGETS_H

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define HAVE_X86 1
#include <immintrin.h>
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#define TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#else
#define HAVE_X86 0
#endif

#endif

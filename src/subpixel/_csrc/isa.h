/* Shared by the compiled kernels that carry several copies of their loops (plain C, AVX2,
 * AVX-512, ...): which copy runs, and the set_isa()/isa() test hooks.
 *
 * Include after defining SP_ISA_TOP (the highest level the module has) and either
 * `static int cpu_isa(void)` (the highest level this CPU runs) or SP_ISA_STANDARD (the
 * levels 0-2 below, from the CPU's flags). Levels: 0 baseline, 1 AVX2+FMA, 2 AVX-512F,
 * 3 AVX512-BF16. */
#ifndef SUBPIXEL_ISA_H
#define SUBPIXEL_ISA_H

#include <Python.h>

#ifdef SP_ISA_STANDARD
static int cpu_isa(void) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}
#endif

static int isa_limit = SP_ISA_TOP; /* set_isa(): a lower limit, for tests */

/* The level of the copy to run: the best this CPU has, at most the limit. */
static int use_isa(void) {
    const int have = cpu_isa();
    return have < isa_limit ? have : isa_limit;
}

static PyObject *py_set_isa(PyObject *self, PyObject *args) {
    (void)self;
    int limit;
    if (!PyArg_ParseTuple(args, "i", &limit)) return NULL;
    const int before = isa_limit;
    isa_limit = limit < 0 ? 0 : (limit > SP_ISA_TOP ? SP_ISA_TOP : limit);
    return PyLong_FromLong(before);
}

static PyObject *py_isa(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
    return PyLong_FromLong(use_isa());
}

#define SP_ISA_METHODS                                                                         \
    {"set_isa", py_set_isa, METH_VARARGS,                                                      \
     "set_isa(limit) -> int\n\n"                                                               \
     "Run copies of the kernels up to this level (0 baseline, 1 AVX2+FMA, 2 AVX-512,\n"        \
     "3 AVX512-BF16, where the module has it) when the CPU has them; returns the previous\n"   \
     "limit. For testing every copy."},                                                        \
        {"isa", py_isa, METH_NOARGS, "isa() -> int: the level of the kernels in use (set_isa)."}

#endif

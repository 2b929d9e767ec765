/* The first layer of ESPCN: a k x k convolution of ONE input channel into many output
 * channels (float32), written channels last, bias and optional ReLU fused. It replaces an
 * im2col matrix (k.k, pixels) and a matrix product, which spend more time writing and
 * re-reading the k.k copies of the plane than multiplying.
 *
 * subpixel._conv_first.conv(...) computes, for y < rows, x < w, o < c_out,
 *   out[y, x, o] = act(bias[o] + sum_{dy, dx < k} in[y + dy, x + dx] . wt[o, dy, dx])
 * where `in` is a plane the caller has already padded (rows + k - 1 rows of w + k - 1
 * floats, any row stride), `out` has any row and pixel strides and contiguous channels,
 * wt is (c_out, k, k) contiguous and act is the identity or ReLU (NaN stays NaN). All are
 * Python buffers (numpy arrays), checked against each other (buffers.h): a wrong shape,
 * format or layout raises ValueError.
 *
 * Method: the weights are packed per call into (k.k, c_pad) with c_pad = c_out rounded up
 * to the vector width V (zeros after c_out; ~k.k.c_out floats, microseconds), so the
 * weights of one tap for V consecutive output channels are one vector load. Output rows are
 * computed one at a time; the channel vectors are taken NV at a time and, for each, blocks
 * of P consecutive pixels are accumulated in P x NV registers (started from the bias): for
 * every tap (dy, dx) the NV weight vectors are loaded once and each of the P input values
 * in[y + dy, x + p + dx] is broadcast into NV fused multiply-adds. Every loaded value feeds
 * several multiply-adds and all P.NV sums are independent, so the loop runs at the speed of
 * the FMA unit; the block is then clamped at zero (ReLU) and stored, the last channel
 * vector with a mask when c_out is not a multiple of V. A row's last w mod P pixels are
 * computed by the same block from a small zero-padded copy of their inputs.
 *   AVX-512F: V = 16, NV = 4 x P = 6 (24 of the 32 registers; NV = 3, 2, 1 with P = 8, 12,
 *             12 for the last channels), AVX2+FMA: V = 8, NV = 2 x P = 6 (of 16), SSE2
 *             (x86-64 baseline, no FMA: products rounded before the sums): V = 4, as AVX2;
 *   plain C elsewhere. Chosen at run time when the CPU has them (__builtin_cpu_supports);
 *   set_isa() limits the choice, for tests. No -march=native.
 * Threads: pthreads over bands of output rows, GIL released.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buffers.h"
#include "parallel.h"

#define MAX_K 11
#define MAX_COUT 256
#define MAX_THREADS SP_MAX_THREADS
#define PMAX 12 /* most pixels in one register block (any variant) */

#include "targets.h"

enum { ISA_BASE = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };

typedef struct {
    const float *in;
    int64_t in_rs; /* row stride (elements); columns are contiguous */
    float *out;
    int64_t out_rs, out_ps; /* row and pixel strides (elements); channels are contiguous */
    int64_t rows, w;
    int k, cout, cpad, relu;
    const float *wp;   /* packed weights (k.k, cpad), zero for o >= cout */
    const float *bias; /* (cpad), zero-padded */
} Conv;

/* One register block: pixels p < npix (npix <= P) of the output row whose inputs start at
 * `in` (row stride in_rs), channels c0 .. c0 + NV.V - 1, written from `out` on (pixel
 * stride c->out_ps). VT: vector type of V floats; LOAD/SET1/FMA/MAX/ZERO/STORE: its
 * operations; STORE_N(ptr, v, n): the first n < V lanes only. */
#define DEFINE_BLOCK(NAME, ATTR, VT, V, NV, P, LOAD, SET1, FMA, MAX, ZERO, STORE, STORE_N)   \
    ATTR static void NAME(const Conv *c, const float *in, int64_t in_rs, int c0, float *out, \
                          int npix) {                                                        \
        const int k = c->k;                                                                  \
        const int64_t cpad = c->cpad;                                                        \
        const float *wt = c->wp + c0;                                                        \
        VT acc[P][NV];                                                                       \
        _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++) {                             \
            const VT b = LOAD(c->bias + c0 + v * V);                                         \
            _Pragma("GCC unroll 16") for (int p = 0; p < P; p++) acc[p][v] = b;             \
        }                                                                                    \
        for (int dy = 0; dy < k; dy++) {                                                     \
            const float *r = in + dy * in_rs;                                                \
            for (int dx = 0; dx < k; dx++, wt += cpad) {                                     \
                VT wv[NV];                                                                   \
                _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++) wv[v] =               \
                    LOAD(wt + v * V);                                                        \
                _Pragma("GCC unroll 16") for (int p = 0; p < P; p++) {                      \
                    const VT x = SET1(r[p + dx]);                                            \
                    _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++) acc[p][v] =       \
                        FMA(x, wv[v], acc[p][v]);                                            \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
        if (c->relu) {                                                                       \
            const VT z = ZERO();                                                             \
            _Pragma("GCC unroll 16") for (int p = 0; p < P; p++)                            \
                _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++) acc[p][v] =           \
                    MAX(z, acc[p][v]); /* max(0, NaN) is NaN */                              \
        }                                                                                    \
        const int nlast = c->cout - (c0 + (NV - 1) * V); /* channels in the last vector */   \
        const int64_t ps = c->out_ps;                                                        \
        _Pragma("GCC unroll 16") for (int p = 0; p < P; p++) {                              \
            if (p >= npix) break;                                                            \
            float *o = out + p * ps;                                                         \
            _Pragma("GCC unroll 16") for (int v = 0; v < NV - 1; v++)                       \
                STORE(o + v * V, acc[p][v]);                                                 \
            if (nlast >= V)                                                                  \
                STORE(o + (NV - 1) * V, acc[p][NV - 1]);                                     \
            else                                                                             \
                STORE_N(o + (NV - 1) * V, acc[p][NV - 1], nlast);                            \
        }                                                                                    \
    }

typedef void (*BlockFn)(const Conv *, const float *, int64_t, int, float *, int);

typedef struct {
    int v;         /* floats per vector */
    int nvmax;     /* most vectors of channels per block */
    BlockFn fn[5]; /* fn[nv]: the block of nv vectors, */
    int p[5];      /* of p[nv] pixels */
} Kernel;

#if !HAVE_X86
/* Plain C (any CPU): "vectors" of one float. */
typedef float f1;
#define P_LOAD(ptr) (*(ptr))
#define P_SET1(v) (v)
#define P_FMA(a, b, c) ((a) * (b) + (c))
#define P_MAX(z, a) ((a) < (z) ? (z) : (a))
#define P_ZERO() 0.0f
#define P_STORE(ptr, v) (*(ptr) = (v))
#define P_STORE_N(ptr, v, n) ((void)(ptr), (void)(v), (void)(n)) /* never: V = 1 */
DEFINE_BLOCK(block_plain4, , f1, 1, 4, 4, P_LOAD, P_SET1, P_FMA, P_MAX, P_ZERO, P_STORE, P_STORE_N)
DEFINE_BLOCK(block_plain3, , f1, 1, 3, 4, P_LOAD, P_SET1, P_FMA, P_MAX, P_ZERO, P_STORE, P_STORE_N)
DEFINE_BLOCK(block_plain2, , f1, 1, 2, 4, P_LOAD, P_SET1, P_FMA, P_MAX, P_ZERO, P_STORE, P_STORE_N)
DEFINE_BLOCK(block_plain1, , f1, 1, 1, 4, P_LOAD, P_SET1, P_FMA, P_MAX, P_ZERO, P_STORE, P_STORE_N)
static const Kernel kernel_plain = {
    1, 4, {NULL, block_plain1, block_plain2, block_plain3, block_plain4}, {0, 4, 4, 4, 4}};
#else
/* SSE2: no FMA (the products are rounded); partial vectors through a buffer. */
#define S_FMA(a, b, c) _mm_add_ps(_mm_mul_ps(a, b), c)
static inline void store_n_sse2(float *ptr, __m128 v, int n) {
    float buf[4];
    _mm_storeu_ps(buf, v);
    memcpy(ptr, buf, sizeof(float) * (size_t)n);
}
DEFINE_BLOCK(block_sse2_2, , __m128, 4, 2, 6, _mm_loadu_ps, _mm_set1_ps, S_FMA, _mm_max_ps,
             _mm_setzero_ps, _mm_storeu_ps, store_n_sse2)
DEFINE_BLOCK(block_sse2_1, , __m128, 4, 1, 12, _mm_loadu_ps, _mm_set1_ps, S_FMA, _mm_max_ps,
             _mm_setzero_ps, _mm_storeu_ps, store_n_sse2)
static const Kernel kernel_sse2 = {4, 2, {NULL, block_sse2_1, block_sse2_2}, {0, 12, 6}};

static const int32_t lane_mask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
TARGET_AVX2 static inline void store_n_avx2(float *ptr, __m256 v, int n) {
    _mm256_maskstore_ps(ptr, _mm256_loadu_si256((const __m256i *)(const void *)(lane_mask + 8 - n)),
                        v);
}
DEFINE_BLOCK(block_avx2_2, TARGET_AVX2, __m256, 8, 2, 6, _mm256_loadu_ps, _mm256_set1_ps,
             _mm256_fmadd_ps, _mm256_max_ps, _mm256_setzero_ps, _mm256_storeu_ps, store_n_avx2)
DEFINE_BLOCK(block_avx2_1, TARGET_AVX2, __m256, 8, 1, 12, _mm256_loadu_ps, _mm256_set1_ps,
             _mm256_fmadd_ps, _mm256_max_ps, _mm256_setzero_ps, _mm256_storeu_ps, store_n_avx2)
static const Kernel kernel_avx2 = {8, 2, {NULL, block_avx2_1, block_avx2_2}, {0, 12, 6}};

#define M_STORE_N(ptr, v, n) _mm512_mask_storeu_ps(ptr, (__mmask16)((1u << (n)) - 1u), v)
#define DEFINE_BLOCK512(NAME, NV, P)                                                          \
    DEFINE_BLOCK(NAME, TARGET_AVX512, __m512, 16, NV, P, _mm512_loadu_ps, _mm512_set1_ps,    \
                 _mm512_fmadd_ps, _mm512_max_ps, _mm512_setzero_ps, _mm512_storeu_ps,       \
                 M_STORE_N)
DEFINE_BLOCK512(block_avx512_4, 4, 6)
DEFINE_BLOCK512(block_avx512_3, 3, 8)
DEFINE_BLOCK512(block_avx512_2, 2, 12)
DEFINE_BLOCK512(block_avx512_1, 1, 12)
static const Kernel kernel_avx512 = {
    16, 4, {NULL, block_avx512_1, block_avx512_2, block_avx512_3, block_avx512_4},
    {0, 12, 12, 8, 6}};
#endif

#define SP_ISA_TOP ISA_AVX512
#define SP_ISA_STANDARD
#include "isa.h"

static const Kernel *kernel_for(int isa) {
#if HAVE_X86
    return isa >= ISA_AVX512 ? &kernel_avx512 : (isa == ISA_AVX2 ? &kernel_avx2 : &kernel_sse2);
#else
    (void)isa;
    return &kernel_plain;
#endif
}

/* Output row y: every channel block, every pixel block. */
static void conv_row(const Conv *c, const Kernel *kn, int64_t y) {
    const int k = c->k;
    const int64_t w = c->w, in_rs = c->in_rs, ps = c->out_ps;
    const float *in = c->in + y * in_rs;
    const int nvec = c->cpad / kn->v;
    for (int v0 = 0; v0 < nvec;) {
        const int nv = nvec - v0 < kn->nvmax ? nvec - v0 : kn->nvmax;
        const BlockFn fn = kn->fn[nv];
        const int P = kn->p[nv], c0 = v0 * kn->v;
        float *out = c->out + y * c->out_rs + c0;
        int64_t x0 = 0;
        for (; x0 + P <= w; x0 += P) fn(c, in + x0, in_rs, c0, out + x0 * ps, P);
        if (x0 < w) { /* the last pixels, from a zero-padded copy of their inputs */
            float tail[MAX_K * (PMAX + MAX_K - 1)];
            const int n = (int)(w - x0), tw = P + k - 1;
            for (int dy = 0; dy < k; dy++) {
                memcpy(tail + dy * tw, in + dy * in_rs + x0, sizeof(float) * (size_t)(n + k - 1));
                memset(tail + dy * tw + n + k - 1, 0, sizeof(float) * (size_t)(P - n));
            }
            fn(c, tail, tw, c0, out + x0 * ps, n);
        }
        v0 += nv;
    }
}

/* ---- threads ----------------------------------------------------------------------- */

typedef struct {
    const Conv *c;
    const Kernel *kn;
    int64_t begin, end; /* output rows */
} Work;

static void *run_work(void *arg) {
    const Work *wk = (const Work *)arg;
    for (int64_t y = wk->begin; y < wk->end; y++) conv_row(wk->c, wk->kn, y);
    return NULL;
}

static void run_threads(const Conv *c, int threads, const Kernel *kn) {
    const int64_t rows = c->rows;
    /* at least ~2M multiply-adds (tens of microseconds) per thread */
    threads = sp_threads_for(threads, rows * c->w * c->cout * c->k * c->k, 1 << 21);
    if (threads > rows) threads = (int)rows;
    Work work[MAX_THREADS];
    Py_BEGIN_ALLOW_THREADS
    for (int t = 0; t < threads; t++) {
        work[t].c = c;
        work[t].kn = kn;
        work[t].begin = rows * t / threads;
        work[t].end = rows * (t + 1) / threads;
    }
    sp_parallel_for(run_work, work, sizeof(Work), threads);
    Py_END_ALLOW_THREADS
}

/* ---- Python ------------------------------------------------------------------------ */

static PyObject *py_conv(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o_in, *o_out, *o_wt, *o_bias;
    int relu, threads;
    if (!PyArg_ParseTuple(args, "OOOOpi", &o_in, &o_out, &o_wt, &o_bias, &relu, &threads))
        return NULL;
    SpBuf b[4];
    memset(b, 0, sizeof b);
    PyObject *result = NULL;
    void *mem = NULL;
    int64_t ist[2], ost[3];
    /* in: the padded plane (rows + k - 1, w + k - 1); out (rows, w, c_out); weight (c_out, k, k) */
    if (sp_get(o_in, &b[0], 2, "f", 0, 0, "in") || sp_get(o_out, &b[1], 3, "f", 1, 0, "out") ||
        sp_get(o_wt, &b[2], 3, "f", 0, 0, "weight") ||
        sp_get(o_bias, &b[3], 1, "f", 0, 0, "bias"))
        goto done;
    const int64_t rows = SP_SHAPE(b[1], 0), w = SP_SHAPE(b[1], 1), cout = SP_SHAPE(b[1], 2);
    const int64_t k = SP_SHAPE(b[2], 1);
    if (rows < 1 || w < 1 || k < 1 || k > MAX_K || cout < 1 || cout > MAX_COUT) {
        PyErr_Format(PyExc_ValueError, "conv: bad size %lld x %lld, k %lld, %lld channels",
                     (long long)rows, (long long)w, (long long)k, (long long)cout);
        goto done;
    }
    {
        const int64_t want_in[2] = {rows + k - 1, w + k - 1}, want_wt[3] = {cout, k, k};
        const int64_t want_b[1] = {cout};
        if (sp_shape(&b[0], want_in, "in") || sp_dense_dim(&b[0], 1, "in") ||
            sp_item_strides(&b[0], ist, "in") || sp_dense_dim(&b[1], 2, "out") ||
            sp_item_strides(&b[1], ost, "out") || sp_apart(&b[1], "out") ||
            sp_shape(&b[2], want_wt, "weight") || sp_contiguous(&b[2], 0, "weight") ||
            sp_shape(&b[3], want_b, "bias") || sp_contiguous(&b[3], 0, "bias"))
            goto done;
    }
    const Kernel *kn = kernel_for(use_isa());
    const int cpad = (int)((cout + kn->v - 1) / kn->v * kn->v);
    const size_t nw = (size_t)k * k * cpad;
    /* 64-byte aligned: with c_pad a multiple of the vector, no load crosses a cache line */
    mem = malloc(sizeof(float) * (nw + (size_t)cpad) + 64);
    if (!mem) {
        PyErr_NoMemory();
        goto done;
    }
    float *wp = (float *)(void *)(((uintptr_t)mem + 63) & ~(uintptr_t)63);
    float *bp = wp + nw;
    memset(wp, 0, sizeof(float) * (nw + (size_t)cpad));
    const float *wsrc = (const float *)b[2].view.buf, *bsrc = (const float *)b[3].view.buf;
    for (int64_t o = 0; o < cout; o++) {
        bp[o] = bsrc[o];
        for (int64_t t = 0; t < k * k; t++) wp[(size_t)t * cpad + o] = wsrc[o * k * k + t];
    }
    Conv c;
    c.in = (const float *)b[0].view.buf;
    c.in_rs = ist[0];
    c.out = (float *)b[1].view.buf;
    c.out_rs = ost[0];
    c.out_ps = ost[1];
    c.rows = rows;
    c.w = w;
    c.k = (int)k;
    c.cout = (int)cout;
    c.cpad = cpad;
    c.relu = relu;
    c.wp = wp;
    c.bias = bp;
    run_threads(&c, threads, kn);
    result = Py_None;
    Py_INCREF(result);
done:
    free(mem);
    sp_release(b, 4);
    return result;
}

static PyMethodDef methods[] = {
    SP_ISA_METHODS,
    {"conv", py_conv, METH_VARARGS,
     "conv(in, out, weight, bias, relu, threads)\n\n"
     "out[y, x, o] = act(bias[o] + sum_{dy, dx < k} in[y + dy, x + dx] * weight[o, dy, dx])\n"
     "for y < rows, x < w, o < c_out (k <= 11, c_out <= 256), float32. in: the padded plane\n"
     "(rows + k - 1, w + k - 1), any row stride, columns contiguous; out: (rows, w, c_out),\n"
     "any row and pixel strides keeping the pixels apart, channels contiguous; weight\n"
     "(c_out, k, k) and bias (c_out,) contiguous; act: ReLU if relu, else the identity.\n"
     "Buffers are checked (ValueError)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_conv_first",
    "First layer of ESPCN: k x k convolution of one channel into many, channels last "
    "(see subpixel/_csrc/conv_first.c).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__conv_first(void) { return PyModule_Create(&module); }

/* A 3x3 convolution by Winograd's minimal filtering F(4x4, 3x3), channels last, float32:
 * the hidden and last layers of the fp32 ESPCN (subpixel.fast._fp32._CpuFp32), in place of
 * NNPACK's F(6x6, 3x3) (1.4x faster on the 64->32 layer, 3x smaller errors: see
 * benchmarks/bench_winograd.py and docs/benchmarks.md).
 *
 * subpixel._winograd.conv(...) computes, for output rows y < rows_in - 2, columns x < w and
 * output channels o < cout,
 *   out[y, x, o] = act(bias[o] + sum_{c, dy, dx} in[y + dy, x + dx - 1, c] . wt[o, c, dy, dx])
 * i.e. "valid" vertically (the caller passes the rows above and below) and zero-padded by
 * one column left and right; act is the identity or ReLU; with `accumulate`, out's values
 * are added before act (out += ...). `in` has channels contiguous
 * (any pixel and row strides), so does `out`. The weights come transformed,
 * U[xi, c, o] = (G g[o, c] G^T)[xi] for the 36 positions xi of a 6x6 tile, with o padded
 * with zeros to cpad (a multiple of 16): subpixel.fast._kernels.winograd.Winograd3x3.create
 * makes them. All are Python buffers (numpy arrays), checked against each other
 * (buffers.h): a wrong shape, format or layout raises ValueError.
 *
 * Method: a tile of 4x4 outputs needs a 6x6 patch d of the input. Tiles are processed a
 * block of TB consecutive tiles of one tile row at a time:
 *   1. V[xi, t, c] = (B^T d_t B)[xi], on vectors of 16 (or 8) channels (tiles on the
 *      border read zeros where their patch leaves the input);
 *   2. M[xi] = V[xi] U[xi] for each xi: 36 small matrix products (TB x cin) (cin x cpad),
 *      RT tiles x NV vectors of 16 output channels of sums held in registers, the weights
 *      loaded once per input channel and the V values broadcast;
 *   3. out = A^T M_t A + bias (act), stored for the pixels and channels that exist.
 * This is 36/16 = 2.25 multiply-adds per output per weight instead of 9; V, M and U of a
 * block stay in the L2 cache. The transforms are those of Lavin & Gray (2016) for the
 * interpolation points 0, +-1, +-2 and infinity.
 *
 * The transforms are written once with GCC vector extensions (winograd_tiles.h, included
 * for vectors of 16 floats and of 8), the products with intrinsics per instruction set;
 * three copies: AVX-512F (16-float transforms), AVX2+FMA and the x86-64 baseline (8-float
 * transforms: 16 would need twice their registers, measured 25 -> 20 ms on the 64->32
 * layer of a 160x640 band), chosen at run time (isa.h; set_isa() limits the choice, for
 * tests); other compilers/CPUs get the portable copy. Build with -ffp-contract=fast so that
 * a * b + c becomes a fused multiply-add where the CPU has one.
 * Threads: pthreads over tile rows, GIL released. Results do not depend on the thread
 * count (each tile is computed the same way by whichever thread takes it).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buffers.h"
#include "parallel.h"

#define TB 24       /* tiles per block (48 measured 6-20% slower) */
/* the register blocks (RT tiles: 24 and 12 with AVX-512, 12 and 6 with AVX2, 3 and 2 in the
 * portable copy) must divide a block: a partial block is padded to whole register blocks */
_Static_assert(TB % 24 == 0, "TB must be a multiple of every register block's tile count");
#define MAX_CIN 4096
#define MAX_CPAD 4096

#include "targets.h"

/* 64-byte vectors passed between always-inlined helpers only: no ABI is involved. */
#pragma GCC diagnostic ignored "-Wpsabi"

#define INLINE static inline __attribute__((always_inline))

typedef float vf __attribute__((vector_size(64)));                /* aligned: V, M, U */
typedef float vfu __attribute__((vector_size(64), aligned(4)));   /* any: in, out */
typedef int32_t vsi __attribute__((vector_size(64)));
typedef float vh __attribute__((vector_size(32)));              /* 8 floats, aligned */
typedef float vhu __attribute__((vector_size(32), aligned(4))); /* 8 floats, any */
typedef int32_t vhi __attribute__((vector_size(32)));

enum { ISA_BASE = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };

typedef struct {
    const float *in;
    int64_t in_rs, in_ps;
    float *out;
    int64_t out_rs, out_ps;
    int64_t rows_in, w;
    int cin, cout, cpad, relu, accumulate;
    const float *u;    /* (36, cin, cpad) */
    const float *bias; /* (cpad) */
} Wino;

typedef struct {
    const Wino *p;
    int64_t ty0, ty1; /* tile rows of this share */
    int isa;
    int failed;
} Share;

INLINE vf splat(float x) { return (vf){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }

/* Steps 1 and 3 (the transforms of one tile): in_tile_wide/out_tile_wide on 16 floats,
 * in_tile_narrow/out_tile_narrow on 8. */
#define WT_SFX wide
#define WT_V vf
#define WT_VU vfu
#define WT_VI vsi
#define WT_W 16
#include "winograd_tiles.h"
#undef WT_SFX
#undef WT_V
#undef WT_VU
#undef WT_VI
#undef WT_W

#define WT_SFX narrow
#define WT_V vh
#define WT_VU vhu
#define WT_VI vhi
#define WT_W 8
#include "winograd_tiles.h"
#undef WT_SFX
#undef WT_V
#undef WT_VU
#undef WT_VI
#undef WT_W

/* Step 2: M[xi, t0 + t, n0 + 16 j] for t < rt, j < nv: the portable copy. */
INLINE void gemm_block(const Wino *p, const float *V, float *M, int t0, int n0, const int rt,
                       const int nv) {
    const int cin = p->cin, cpad = p->cpad;
    for (int xi = 0; xi < 36; xi++) {
        const float *v = V + ((size_t)xi * TB + t0) * cin;
        const float *u = p->u + (size_t)xi * cin * cpad + n0;
        float *m = M + ((size_t)xi * TB + t0) * cpad + n0;
        for (int t = 0; t < rt; t++)
            for (int j = 0; j < nv; j++) *(vf *)(m + (size_t)t * cpad + 16 * j) = splat(0.0f);
        for (int k = 0; k < cin; k++)
            for (int t = 0; t < rt; t++) {
                const vf b = splat(v[(size_t)t * cin + k]);
                for (int j = 0; j < nv; j++)
                    *(vf *)(m + (size_t)t * cpad + 16 * j) +=
                        b * *(const vf *)(u + (size_t)k * cpad + 16 * j);
            }
    }
}

#if HAVE_X86
/* The same with the sums in registers: RT tiles x NV vectors of W floats (VEC: __m512 or
 * __m256), the NV weight vectors loaded once per input channel, each V value broadcast. */
#define GEMM_KERNEL(NAME, TARGET, VEC, W, LOAD, STORE, SET1, ZERO, FMA, RT, NV)                \
    TARGET static void NAME(const Wino *p, const float *V, float *M, int t0, int n0) {         \
        const int cin = p->cin, cpad = p->cpad;                                                \
        for (int xi = 0; xi < 36; xi++) {                                                      \
            const float *v = V + ((size_t)xi * TB + t0) * cin;                                 \
            const float *u = p->u + (size_t)xi * cin * cpad + n0;                              \
            VEC acc[RT][NV];                                                                   \
            _Pragma("GCC unroll 32") for (int t = 0; t < RT; t++)                              \
                _Pragma("GCC unroll 8") for (int j = 0; j < NV; j++) acc[t][j] = ZERO();       \
            for (int k = 0; k < cin; k++) {                                                    \
                VEC wv[NV];                                                                    \
                _Pragma("GCC unroll 8") for (int j = 0; j < NV; j++)                           \
                    wv[j] = LOAD(u + (size_t)k * cpad + W * j);                                \
                _Pragma("GCC unroll 32") for (int t = 0; t < RT; t++) {                        \
                    const VEC b = SET1(v[(size_t)t * cin + k]);                                \
                    _Pragma("GCC unroll 8") for (int j = 0; j < NV; j++)                       \
                        acc[t][j] = FMA(b, wv[j], acc[t][j]);                                  \
                }                                                                              \
            }                                                                                  \
            float *m = M + ((size_t)xi * TB + t0) * cpad + n0;                                 \
            _Pragma("GCC unroll 32") for (int t = 0; t < RT; t++)                              \
                _Pragma("GCC unroll 8") for (int j = 0; j < NV; j++)                           \
                    STORE(m + (size_t)t * cpad + W * j, acc[t][j]);                            \
        }                                                                                      \
    }

#define GEMM512(NAME, RT, NV)                                                                  \
    GEMM_KERNEL(NAME, TARGET_AVX512, __m512, 16, _mm512_load_ps, _mm512_store_ps,              \
                _mm512_set1_ps, _mm512_setzero_ps, _mm512_fmadd_ps, RT, NV)
#define GEMM256(NAME, RT, NV)                                                                  \
    GEMM_KERNEL(NAME, TARGET_AVX2, __m256, 8, _mm256_load_ps, _mm256_store_ps, _mm256_set1_ps, \
                _mm256_setzero_ps, _mm256_fmadd_ps, RT, NV)
GEMM512(gemm512_32, 12, 2) /* 32 channels: 24 sums */
GEMM512(gemm512_16, 24, 1) /* 16 channels */
GEMM256(gemm256_32, 6, 4)
GEMM256(gemm256_16, 12, 2)
#endif

typedef void (*GemmFn)(const Wino *, const float *, float *, int, int);

/* One share's tile rows; `gemm` does rt tiles x 16 nv channels of step 2 (NULL: the
 * portable gemm_block). */
INLINE void run_rows(const Share *sh, float *V, float *M, GemmFn gemm, const int rt,
                     const int nv, const int cin_const, const int narrow) {
    const Wino *p = sh->p;
    const int cin = cin_const ? cin_const : p->cin;
    const int64_t ntx = (p->w + 3) / 4;
    const size_t vs = (size_t)TB * cin;
    for (int64_t ty = sh->ty0; ty < sh->ty1; ty++) {
        const float *rp[6];
        int rows_ok = 1;
        for (int i = 0; i < 6; i++) {
            const int64_t y = 4 * ty + i;
            rp[i] = y < p->rows_in ? p->in + y * p->in_rs : NULL;
            rows_ok &= rp[i] != NULL;
        }
        for (int64_t tx0 = 0; tx0 < ntx; tx0 += TB) {
            const int nt = (int)(ntx - tx0 < TB ? ntx - tx0 : TB);
            for (int t = 0; t < nt; t++) {
                const int64_t x0 = 4 * (tx0 + t) - 1;
                const int edge = !(rows_ok && x0 >= 0 && x0 + 6 <= p->w);
                if (narrow && edge)
                    in_tile_narrow(p, rp, x0, V + (size_t)t * cin, cin, 1);
                else if (narrow)
                    in_tile_narrow(p, rp, x0, V + (size_t)t * cin, cin, 0);
                else if (edge)
                    in_tile_wide(p, rp, x0, V + (size_t)t * cin, cin, 1);
                else
                    in_tile_wide(p, rp, x0, V + (size_t)t * cin, cin, 0);
            }
            const int nblk = (nt + rt - 1) / rt;
            for (int xi = 0; xi < 36 && nt < nblk * rt; xi++) /* unused tiles: zeros */
                memset(V + xi * vs + (size_t)nt * cin, 0,
                       sizeof(float) * (size_t)(nblk * rt - nt) * cin);
            for (int blk = 0; blk < nblk; blk++)
                for (int n0 = 0; n0 < p->cpad; n0 += 16 * nv) {
                    if (gemm)
                        gemm(p, V, M, blk * rt, n0);
                    else
                        gemm_block(p, V, M, blk * rt, n0, rt, nv);
                }
            for (int t = 0; t < nt; t++) {
                if (narrow)
                    out_tile_narrow(p, M, t, 4 * ty, 4 * (tx0 + t));
                else
                    out_tile_wide(p, M, t, 4 * ty, 4 * (tx0 + t));
            }
        }
    }
}

/* Per ISA: 32 output channels per register block when cpad allows, else 16; the input
 * channel counts of ESPCN (64, 32) as constants (the transforms' addresses then fold);
 * NARROW: transforms on 8-float vectors. */
#define RUN_ISA(NAME, TARGET, G32, RT32, G16, RT16, NARROW)                                    \
    TARGET static void NAME(const Share *sh, float *V, float *M) {                             \
        const int wide = sh->p->cpad % 32 == 0, cin = sh->p->cin;                              \
        if (wide && cin == 64)                                                                 \
            run_rows(sh, V, M, G32, RT32, 2, 64, NARROW);                                      \
        else if (wide && cin == 32)                                                            \
            run_rows(sh, V, M, G32, RT32, 2, 32, NARROW);                                      \
        else if (wide)                                                                         \
            run_rows(sh, V, M, G32, RT32, 2, 0, NARROW);                                       \
        else if (cin == 32)                                                                    \
            run_rows(sh, V, M, G16, RT16, 1, 32, NARROW);                                      \
        else                                                                                   \
            run_rows(sh, V, M, G16, RT16, 1, 0, NARROW);                                       \
    }

RUN_ISA(run_base, , NULL, 2, NULL, 3, 1)
#if HAVE_X86
RUN_ISA(run_avx2, TARGET_AVX2, gemm256_32, 6, gemm256_16, 12, 1)
RUN_ISA(run_avx512, TARGET_AVX512, gemm512_32, 12, gemm512_16, 24, 0)
#endif

static void *share_main(void *arg) {
    Share *sh = (Share *)arg;
    const Wino *p = sh->p;
    const size_t vn = (size_t)36 * TB * p->cin, mn = (size_t)36 * TB * p->cpad;
    float *buf = aligned_alloc(64, sizeof(float) * (vn + mn));
    if (!buf) {
        sh->failed = 1;
        return NULL;
    }
#if HAVE_X86
    if (sh->isa >= ISA_AVX512)
        run_avx512(sh, buf, buf + vn);
    else if (sh->isa == ISA_AVX2)
        run_avx2(sh, buf, buf + vn);
    else
#endif
        run_base(sh, buf, buf + vn);
    free(buf);
    return NULL;
}

#define SP_ISA_TOP ISA_AVX512
#define SP_ISA_STANDARD
#include "isa.h"

static PyObject *py_conv(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o_in, *o_out, *o_u, *o_bias;
    int relu, accumulate, threads;
    if (!PyArg_ParseTuple(args, "OOOOppi", &o_in, &o_out, &o_u, &o_bias, &relu, &accumulate,
                          &threads))
        return NULL;
    SpBuf b[4];
    memset(b, 0, sizeof b);
    PyObject *result = NULL;
    int64_t ist[3], ost[3];
    /* in (rows_in, w, cin), out (rows_in - 2, w, cout), U (36, cin, cpad), bias (cpad,) */
    if (sp_get(o_in, &b[0], 3, "f", 0, 0, "in") || sp_get(o_out, &b[1], 3, "f", 1, 0, "out") ||
        sp_get(o_u, &b[2], 3, "f", 0, 0, "u") || sp_get(o_bias, &b[3], 1, "f", 0, 0, "bias"))
        goto done;
    const int64_t rows_in = SP_SHAPE(b[0], 0), w = SP_SHAPE(b[0], 1), cin = SP_SHAPE(b[0], 2);
    const int64_t cout = SP_SHAPE(b[1], 2), cpad = SP_SHAPE(b[2], 2);
    if (rows_in < 3 || w < 1 || cin < 16 || cin % 16 || cin > MAX_CIN || cout < 1 ||
        cpad % 16 || cpad < cout || cpad > MAX_CPAD) {
        PyErr_Format(PyExc_ValueError,
                     "winograd.conv: needs rows_in >= 3, w >= 1, cin a multiple of 16 (<= %d) "
                     "and cout <= cpad (a multiple of 16, <= %d); got rows_in %lld, w %lld, "
                     "cin %lld, cout %lld, cpad %lld",
                     MAX_CIN, MAX_CPAD, (long long)rows_in, (long long)w, (long long)cin,
                     (long long)cout, (long long)cpad);
        goto done;
    }
    {
        const int64_t want_out[3] = {rows_in - 2, w, cout}, want_u[3] = {36, cin, cpad};
        const int64_t want_b[1] = {cpad};
        if (sp_dense_dim(&b[0], 2, "in") || sp_item_strides(&b[0], ist, "in") ||
            sp_shape(&b[1], want_out, "out") || sp_dense_dim(&b[1], 2, "out") ||
            sp_item_strides(&b[1], ost, "out") || sp_apart(&b[1], "out") ||
            sp_shape(&b[2], want_u, "u") || sp_contiguous(&b[2], 64, "u") ||
            sp_shape(&b[3], want_b, "bias") || sp_contiguous(&b[3], 64, "bias"))
            goto done;
    }
    Wino p = {(const float *)b[0].view.buf,
              ist[0],
              ist[1],
              (float *)b[1].view.buf,
              ost[0],
              ost[1],
              rows_in,
              w,
              (int)cin,
              (int)cout,
              (int)cpad,
              relu,
              accumulate,
              (const float *)b[2].view.buf,
              (const float *)b[3].view.buf};
    const int64_t nty = (rows_in - 2 + 3) / 4;
    const int n = sp_threads_for(threads, nty * ((w + 3) / 4) * cin * cpad, 1 << 20);
    Share sh[SP_MAX_THREADS];
    const int isa = use_isa();
    for (int k = 0; k < n; k++)
        sh[k] = (Share){&p, nty * k / n, nty * (k + 1) / n, isa, 0};
    Py_BEGIN_ALLOW_THREADS sp_parallel_for(share_main, sh, sizeof(Share), n);
    Py_END_ALLOW_THREADS
    int failed = 0;
    for (int k = 0; k < n; k++) failed |= sh[k].failed;
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    sp_release(b, 4);
    return result;
}

static PyMethodDef methods[] = {
    {"conv", py_conv, METH_VARARGS,
     "conv(in, out, u, bias, relu, accumulate, threads) -> None\n\n"
     "3x3 convolution by Winograd F(4x4, 3x3), channels last (see the module source): in\n"
     "(rows_in, w, cin) and out (rows_in - 2, w, cout) float32 with contiguous channels\n"
     "(any row and pixel strides, out's pixels apart), U (36, cin, cpad) and bias (cpad,)\n"
     "contiguous and 64-byte aligned. Buffers are checked (ValueError)."},
    SP_ISA_METHODS,
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_winograd",
    "Winograd F(4x4, 3x3) convolution, channels last (see subpixel/_csrc/winograd.c).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__winograd(void) { return PyModule_Create(&module); }

/* The colour/chroma part of the ESPCN RGB pipeline (subpixel.fast.FastUpscaler), fused.
 *
 * subpixel._pipeline.pre(...) splits an image into what the network and the chroma need:
 *   uint8 RGB (h, w, 3) or float RGB planes (3, h, w)
 *     -> Y (h, w) float32 and the two chroma planes (2, h, w + 4) float32, each row padded
 *        by two columns on both sides for the 5-tap filter (symmetric or replicate).
 *   [Y, C1, C2] = S @ [R, G, B] + s0 with S, s0 given (the colour transform, /255 for uint8).
 *
 * subpixel._pipeline.post(...) makes the output from the network's sub-pixel phases and
 * the chroma planes. For LR pixel (y, x) and phase (i, j), output pixel (s.y + i, s.x + j):
 *   Y  = clamp(phase[y.w + x][i.s + j], lo, hi)            (the preimage of [0, 1])
 *   Cq = sum_a taps[i][a] . sum_b taps[j][b] . Cq[pad(y - 2 + a)][pad(x - 2 + b)]
 *   v_c = k[c][0].Y + k[c][1].C1 + k[c][2].C2 + k[c][3],  c = R, G, B
 *   out = uint8: trunc(clamp(v_c, 0, top))  (k carries the 255 gain and the +0.5 of
 *         rounding half up), or float32: clamp(v_c, 0, top)
 * written interleaved into (s.h, s.w, 3). The bicubic interpolation is separable and
 * polyphase: each LR row is filtered horizontally once into s phase columns (kept in a ring
 * of five rows), each output row is then one 5-tap vertical combination of ring rows. All
 * temporaries are rows, so everything stays in L1/L2; the output is written once.
 *
 * Arrays are Python buffers (numpy arrays), checked against each other (buffers.h): a wrong
 * shape, format or layout raises ValueError; nothing trusts an address.
 * Threads: LR rows are shared out between `threads` pthreads; the GIL is released. The
 * inner loops are written for gcc's auto-vectoriser (SSE2 baseline); AVX2+FMA and AVX-512
 * copies of every kernel are selected at run time when the CPU has them (set_isa() limits
 * the choice, for tests). The copies with FMA round products differently from the baseline
 * (which has no FMA contraction in ISO C mode): results agree to ~1e-6 of a grey level.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buffers.h"
#include "parallel.h"

#define MAX_S 8
#define MAX_THREADS SP_MAX_THREADS
#define RING 5

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define HAVE_CLONES 1
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#if defined(__clang__) /* no prefer-vector-width target option */
#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))
#else
#define TARGET_AVX512                                                                          \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,prefer-vector-width=512")))
#endif
#else
#define HAVE_CLONES 0
#endif
#define INLINE static inline __attribute__((always_inline))

enum { ISA_BASE = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };

/* a * b + c, fused in the FMA copies (F is a compile-time constant there). */
INLINE float madd(float a, float b, float c, const int F) {
    return F ? __builtin_fmaf(a, b, c) : a * b + c;
}

/* Index of a length-n axis padded by 2: MATLAB's edge-including mirror, or the edge. */
static int64_t pad_index(int64_t i, int64_t n, int replicate) {
    if (replicate) return i < 0 ? 0 : (i >= n ? n - 1 : i);
    const int64_t m = 2 * n;
    int64_t j = i % m;
    if (j < 0) j += m;
    return j >= n ? m - 1 - j : j;
}

/* ---- pre --------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *rgb; /* uint8 (h, w, 3): row stride rgb_rs bytes, pixels dense */
    int64_t rgb_rs;
    const float *planes; /* or float (3, h, w) dense */
    float *y;            /* (h, w) */
    float *c;            /* (2, h, w + 4) */
    int64_t h, w;
    float m[3][4]; /* rows Y, C1, C2: coefficients of R, G, B and the offset */
    int replicate;
} Pre;

INLINE void pre_rows_impl(const Pre *p, int64_t r0, int64_t r1, const int F) {
    const int64_t w = p->w, wp = w + 4, h = p->h;
    const float a0 = p->m[0][0], a1 = p->m[0][1], a2 = p->m[0][2], a3 = p->m[0][3];
    const float b0 = p->m[1][0], b1 = p->m[1][1], b2 = p->m[1][2], b3 = p->m[1][3];
    const float c0 = p->m[2][0], c1 = p->m[2][1], c2 = p->m[2][2], c3 = p->m[2][3];
    for (int64_t r = r0; r < r1; r++) {
        float *restrict yy = p->y + r * w;
        float *restrict u = p->c + r * wp + 2;
        float *restrict v = p->c + (h + r) * wp + 2;
        if (p->rgb) {
            const uint8_t *restrict src = p->rgb + r * p->rgb_rs;
            for (int64_t x = 0; x < w; x++) {
                const float R = (float)src[3 * x], G = (float)src[3 * x + 1];
                const float B = (float)src[3 * x + 2];
                yy[x] = madd(a2, B, madd(a1, G, a0 * R, F), F) + a3;
                u[x] = madd(b2, B, madd(b1, G, b0 * R, F), F) + b3;
                v[x] = madd(c2, B, madd(c1, G, c0 * R, F), F) + c3;
            }
        } else {
            const float *restrict pr = p->planes + r * w;
            const float *restrict pg = pr + h * w;
            const float *restrict pb = pg + h * w;
            for (int64_t x = 0; x < w; x++) {
                const float R = pr[x], G = pg[x], B = pb[x];
                yy[x] = madd(a2, B, madd(a1, G, a0 * R, F), F) + a3;
                u[x] = madd(b2, B, madd(b1, G, b0 * R, F), F) + b3;
                v[x] = madd(c2, B, madd(c1, G, c0 * R, F), F) + c3;
            }
        }
        const int64_t edge[4] = {-2, -1, w, w + 1};
        for (int k = 0; k < 4; k++) {
            const int64_t src_x = pad_index(edge[k], w, p->replicate);
            u[edge[k]] = u[src_x];
            v[edge[k]] = v[src_x];
        }
    }
}

static void pre_rows_base(const Pre *p, int64_t r0, int64_t r1) { pre_rows_impl(p, r0, r1, 0); }
#if HAVE_CLONES
TARGET_AVX2 static void pre_rows_avx2(const Pre *p, int64_t r0, int64_t r1) {
    pre_rows_impl(p, r0, r1, 1);
}
TARGET_AVX512 static void pre_rows_avx512(const Pre *p, int64_t r0, int64_t r1) {
    pre_rows_impl(p, r0, r1, 1);
}
#endif

/* ---- post -------------------------------------------------------------------------- */

typedef struct {
    const float *ph; /* phases: element (n, q) at ph[n * ph_rs + q * ph_cs] */
    int64_t ph_rs, ph_cs;
    const float *c; /* (2, h, w + 4) */
    int64_t h, w;
    int s;
    float taps[MAX_S][RING];
    float k[3][4];
    float lo, hi, top;
    int replicate;
    int f32;   /* output float32 instead of uint8 */
    char *out; /* (s.h, s.w, 3): row stride out_rs bytes, pixels dense */
    int64_t out_rs;
} Post;

/* One padded LR chroma row -> its s horizontal phases in output order (x.s + j). */
INLINE void hpass(const float *restrict src, float *restrict dst, int64_t w, const int S,
                  const float (*taps)[RING], const int F) {
    float t[MAX_S][RING];
    for (int j = 0; j < S; j++)
        for (int a = 0; a < RING; a++) t[j][a] = taps[j][a];
    for (int64_t x = 0; x < w; x++)
        for (int j = 0; j < S; j++)
            dst[x * S + j] = madd(t[j][4], src[x + 4],
                                  madd(t[j][3], src[x + 3],
                                       madd(t[j][2], src[x + 2],
                                            madd(t[j][1], src[x + 1], t[j][0] * src[x], F), F),
                                       F),
                                  F);
}

/* Output row (y, i)'s Y in output order, clamped. */
INLINE void gather_y(const Post *p, int64_t y, int i, float *restrict dst, const int S) {
    const int64_t w = p->w;
    const float lo = p->lo, hi = p->hi;
    const float *base = p->ph + y * w * p->ph_rs + (int64_t)i * S * p->ph_cs;
    if (p->ph_cs == 1 && p->ph_rs == S * S) { /* pixel-major, dense */
        const float *restrict src = base;
        for (int64_t x = 0; x < w; x++)
            for (int j = 0; j < S; j++) {
                float v = src[x * S * S + j];
                v = v < lo ? lo : v;
                dst[x * S + j] = v > hi ? hi : v;
            }
    } else if (p->ph_cs == 1) { /* pixel-major: the phases of a pixel together */
        const float *restrict src = base;
        const int64_t rs = p->ph_rs;
        for (int64_t x = 0; x < w; x++)
            for (int j = 0; j < S; j++) {
                float v = src[x * rs + j];
                v = v < lo ? lo : v;
                dst[x * S + j] = v > hi ? hi : v;
            }
    } else if (p->ph_rs == 1) { /* phase-major: one plane per phase, interleaved here */
        const float *restrict src = base;
        const int64_t cs = p->ph_cs;
        for (int64_t x = 0; x < w; x++)
            for (int j = 0; j < S; j++) {
                float v = src[j * cs + x];
                v = v < lo ? lo : v;
                dst[x * S + j] = v > hi ? hi : v;
            }
    } else {
        for (int64_t x = 0; x < w; x++)
            for (int j = 0; j < S; j++) {
                float v = base[x * p->ph_rs + j * p->ph_cs];
                v = v < lo ? lo : v;
                dst[x * S + j] = v > hi ? hi : v;
            }
    }
}

/* Dense pixel-major phases: the Y of all s output rows of LR row y at once (one pass over
 * the row's phases; dst holds s rows of s.w). */
INLINE void gather_y_rows(const Post *p, int64_t y, float *restrict dst, const int S) {
    const int64_t w = p->w, n = S * w;
    const float lo = p->lo, hi = p->hi;
    const float *restrict src = p->ph + y * w * S * S;
    for (int64_t x = 0; x < w; x++)
        for (int i = 0; i < S; i++)
            for (int j = 0; j < S; j++) {
                float v = src[x * S * S + i * S + j];
                v = v < lo ? lo : v;
                dst[i * n + x * S + j] = v > hi ? hi : v;
            }
}

/* One output row: the vertical 5-tap chroma filter over ring rows u[0..4] / v[0..4] (in
 * output order), the colour matrix, clamping, and the interleaved store. */
typedef struct {
    const float *u[RING], *v[RING];
    const float *y;
    float t[RING];
    float k[3][4];
    float top;
} RowArgs;

/* Output row values at o (restrict-qualified pointers are taken by the loops that call it). */
#define RGB_AT(o)                                                                              \
    const float c1 = madd(t4, u4[o], madd(t3, u3[o], madd(t2, u2[o],                           \
                          madd(t1, u1[o], t0 * u0[o], F), F), F), F);                          \
    const float c2 = madd(t4, v4[o], madd(t3, v3[o], madd(t2, v2[o],                           \
                          madd(t1, v1[o], t0 * v0[o], F), F), F), F);                          \
    const float yv = yr[o];                                                                    \
    float r = madd(k02, c2, madd(k01, c1, madd(k00, yv, k03, F), F), F);                       \
    float g = madd(k12, c2, madd(k11, c1, madd(k10, yv, k13, F), F), F);                       \
    float b = madd(k22, c2, madd(k21, c1, madd(k20, yv, k23, F), F), F);                       \
    r = r < 0.0f ? 0.0f : r;                                                                   \
    g = g < 0.0f ? 0.0f : g;                                                                   \
    b = b < 0.0f ? 0.0f : b;                                                                   \
    r = r > top ? top : r;                                                                     \
    g = g > top ? top : g;                                                                     \
    b = b > top ? top : b;

#define ROW_LOCALS                                                                             \
    const float *restrict u0 = a->u[0], *restrict u1 = a->u[1], *restrict u2 = a->u[2];        \
    const float *restrict u3 = a->u[3], *restrict u4 = a->u[4];                                \
    const float *restrict v0 = a->v[0], *restrict v1 = a->v[1], *restrict v2 = a->v[2];        \
    const float *restrict v3 = a->v[3], *restrict v4 = a->v[4];                                \
    const float *restrict yr = a->y;                                                           \
    const float t0 = a->t[0], t1 = a->t[1], t2 = a->t[2], t3 = a->t[3], t4 = a->t[4];          \
    const float k00 = a->k[0][0], k01 = a->k[0][1], k02 = a->k[0][2], k03 = a->k[0][3];        \
    const float k10 = a->k[1][0], k11 = a->k[1][1], k12 = a->k[1][2], k13 = a->k[1][3];        \
    const float k20 = a->k[2][0], k21 = a->k[2][1], k22 = a->k[2][2], k23 = a->k[2][3];        \
    const float top = a->top;

/* float32 RGB. */
INLINE void row_f32(const RowArgs *a, float *restrict d, int64_t n, const int F) {
    ROW_LOCALS
    for (int64_t o = 0; o < n; o++) {
        RGB_AT(o)
        d[3 * o] = r;
        d[3 * o + 1] = g;
        d[3 * o + 2] = b;
    }
}

/* uint8 RGB, stored interleaved by the vectoriser (byte shuffles: AVX2 and up). */
INLINE void row_u8(const RowArgs *a, uint8_t *restrict d, int64_t n, const int F) {
    ROW_LOCALS
    for (int64_t o = 0; o < n; o++) {
        RGB_AT(o)
        d[3 * o] = (uint8_t)(int32_t)r;
        d[3 * o + 1] = (uint8_t)(int32_t)g;
        d[3 * o + 2] = (uint8_t)(int32_t)b;
    }
}

/* uint8 RGB for SSE2, which has no byte shuffle: pixels packed into 32-bit words by the
 * vectoriser, then stored 3 bytes at a time. */
INLINE void row_u8_packed(const RowArgs *a, uint8_t *restrict d, uint32_t *restrict pk,
                          int64_t n, const int F) {
    ROW_LOCALS
    for (int64_t o = 0; o < n; o++) {
        RGB_AT(o)
        pk[o] = (uint32_t)(int32_t)r | (uint32_t)(int32_t)g << 8 | (uint32_t)(int32_t)b << 16;
    }
    for (int64_t o = 0; o < n; o++) {
        d[3 * o] = (uint8_t)pk[o];
        d[3 * o + 1] = (uint8_t)(pk[o] >> 8);
        d[3 * o + 2] = (uint8_t)(pk[o] >> 16);
    }
}

INLINE void post_rows_impl(const Post *p, int64_t y0, int64_t y1, float *ring, int64_t *tag,
                           float *yrow, const int S, const int F, const int PACKED) {
    const int64_t h = p->h, w = p->w, wp = w + 4, n = S * w;
    for (int64_t y = y0; y < y1; y++) {
        const float *hu[RING], *hv[RING];
        for (int a = 0; a < RING; a++) {
            const int64_t r = pad_index(y - 2 + a, h, p->replicate);
            const int slot = (int)(r % RING); /* the rows needed lie in y - 2 .. y + 2 */
            float *dst = ring + (int64_t)slot * 2 * n;
            if (tag[slot] != r) {
                hpass(p->c + r * wp, dst, w, S, p->taps, F);
                hpass(p->c + (h + r) * wp, dst + n, w, S, p->taps, F);
                tag[slot] = r;
            }
            hu[a] = dst;
            hv[a] = dst + n;
        }
        RowArgs args;
        for (int a = 0; a < RING; a++) {
            args.u[a] = hu[a];
            args.v[a] = hv[a];
        }
        args.y = yrow;
        memcpy(args.k, p->k, sizeof args.k);
        args.top = p->top;
        /* all rows at once pays for s >= 4 only (12-byte chunks of s = 3 do not) */
        const int dense = S >= 4 && p->ph_cs == 1 && p->ph_rs == S * S;
        if (dense) gather_y_rows(p, y, yrow, S);
        for (int i = 0; i < S; i++) {
            if (dense)
                args.y = yrow + i * n;
            else
                gather_y(p, y, i, yrow, S);
            memcpy(args.t, p->taps[i], sizeof args.t);
            char *row = p->out + (y * S + i) * p->out_rs;
            if (p->f32)
                row_f32(&args, (float *)row, n, F);
            else if (PACKED)
                row_u8_packed(&args, (uint8_t *)row, (uint32_t *)(yrow + S * n), n, F);
            else
                row_u8(&args, (uint8_t *)row, n, F);
        }
    }
}

INLINE void post_rows_dispatch(const Post *p, int64_t y0, int64_t y1, float *ring, int64_t *tag,
                               float *yrow, const int F, const int PACKED) {
    switch (p->s) { /* constant factors: the phase loops unroll and vectorise */
    case 2: post_rows_impl(p, y0, y1, ring, tag, yrow, 2, F, PACKED); return;
    case 3: post_rows_impl(p, y0, y1, ring, tag, yrow, 3, F, PACKED); return;
    case 4: post_rows_impl(p, y0, y1, ring, tag, yrow, 4, F, PACKED); return;
    default: post_rows_impl(p, y0, y1, ring, tag, yrow, p->s, F, PACKED); return;
    }
}

static void post_rows_base(const Post *p, int64_t y0, int64_t y1, float *ring, int64_t *tag,
                           float *yrow) {
    post_rows_dispatch(p, y0, y1, ring, tag, yrow, 0, 1);
}
#if HAVE_CLONES
TARGET_AVX2 static void post_rows_avx2(const Post *p, int64_t y0, int64_t y1, float *ring,
                                       int64_t *tag, float *yrow) {
    post_rows_dispatch(p, y0, y1, ring, tag, yrow, 1, 0);
}
TARGET_AVX512 static void post_rows_avx512(const Post *p, int64_t y0, int64_t y1, float *ring,
                                           int64_t *tag, float *yrow) {
    post_rows_dispatch(p, y0, y1, ring, tag, yrow, 1, 0);
}
#endif

/* The best kernels this CPU runs. */
static int cpu_isa(void) {
#if HAVE_CLONES
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = ISA_BASE;
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            cached = ISA_AVX2;
            if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
                cached = ISA_AVX512;
        }
    }
    return cached;
#else
    return ISA_BASE;
#endif
}

#define SP_ISA_TOP ISA_AVX512
#include "isa.h"

/* ---- threads ----------------------------------------------------------------------- */

typedef struct {
    const Pre *pre;
    const Post *post;
    int64_t begin, end; /* LR rows */
    int isa;
    int failed;
} Work;

static void *run_work(void *arg) {
    Work *wk = (Work *)arg;
    if (wk->begin >= wk->end) return NULL;
    if (wk->pre) {
#if HAVE_CLONES
        if (wk->isa == ISA_AVX512)
            pre_rows_avx512(wk->pre, wk->begin, wk->end);
        else if (wk->isa == ISA_AVX2)
            pre_rows_avx2(wk->pre, wk->begin, wk->end);
        else
#endif
            pre_rows_base(wk->pre, wk->begin, wk->end);
        return NULL;
    }
    const Post *p = wk->post;
    const int64_t n = (int64_t)p->s * p->w;
    float *buf = (float *)malloc(sizeof(float) * (size_t)((2 * RING + p->s + 1) * n + 16));
    if (!buf) {
        wk->failed = 1;
        return NULL;
    }
    int64_t tag[RING];
    for (int a = 0; a < RING; a++) tag[a] = -1;
    float *ring = buf, *yrow = buf + 2 * RING * n;
#if HAVE_CLONES
    if (wk->isa == ISA_AVX512)
        post_rows_avx512(p, wk->begin, wk->end, ring, tag, yrow);
    else if (wk->isa == ISA_AVX2)
        post_rows_avx2(p, wk->begin, wk->end, ring, tag, yrow);
    else
#endif
        post_rows_base(p, wk->begin, wk->end, ring, tag, yrow);
    free(buf);
    return NULL;
}

/* Share rows [0, rows) out between threads; returns 0, or -1 (MemoryError set). */
static int run_threads(const Pre *pre, const Post *post, int64_t rows, int threads,
                       int64_t work_per_row) {
    threads = sp_threads_for(threads, rows * work_per_row, 1 << 14); /* each one's share */
    if (threads > rows) threads = (int)(rows > 0 ? rows : 1);
    const int isa = use_isa();
    Work work[MAX_THREADS];
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (int k = 0; k < threads; k++) {
        work[k].pre = pre;
        work[k].post = post;
        work[k].begin = rows * k / threads;
        work[k].end = rows * (k + 1) / threads;
        work[k].isa = isa;
        work[k].failed = 0;
    }
    sp_parallel_for(run_work, work, sizeof(Work), threads);
    for (int k = 0; k < threads; k++) failed |= work[k].failed;
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* ---- Python ------------------------------------------------------------------------ */

static int parse_floats(PyObject *seq, float *out, Py_ssize_t n, const char *what) {
    PyObject *fast = PySequence_Fast(seq, what);
    if (!fast) return -1;
    if (PySequence_Fast_GET_SIZE(fast) != n) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd values, got %zd", what, n,
                     PySequence_Fast_GET_SIZE(fast));
        Py_DECREF(fast);
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        const double v = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(fast, k));
        if (v == -1.0 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
        out[k] = (float)v;
    }
    Py_DECREF(fast);
    return 0;
}

static PyObject *py_pre(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o_src, *o_y, *o_c, *coef;
    int replicate, threads;
    if (!PyArg_ParseTuple(args, "OOOOpi", &o_src, &o_y, &o_c, &coef, &replicate, &threads))
        return NULL;
    SpBuf b[3];
    memset(b, 0, sizeof b);
    PyObject *result = NULL;
    Pre p;
    memset(&p, 0, sizeof p);
    if (sp_get(o_src, &b[0], 3, "Bf", 0, 0, "src") || sp_get(o_y, &b[1], 2, "f", 1, 0, "y") ||
        sp_get(o_c, &b[2], 3, "f", 1, 0, "c"))
        goto done;
    const int is_u8 = sp_format(&b[0].view)[0] == 'B';
    /* uint8 (h, w, 3) with dense pixels (any row stride), or float32 planes (3, h, w) */
    const int64_t h = SP_SHAPE(b[0], is_u8 ? 0 : 1), w = SP_SHAPE(b[0], is_u8 ? 1 : 2);
    if (h < 1 || w < 1) {
        PyErr_SetString(PyExc_ValueError, "pre: empty image");
        goto done;
    }
    if (is_u8) {
        const int64_t want[3] = {h, w, 3};
        if (sp_shape(&b[0], want, "src") || sp_dense_dim(&b[0], 2, "src")) goto done;
        if (SP_STRIDE(b[0], 1) != 3) {
            PyErr_SetString(PyExc_ValueError, "src: uint8 pixels must be dense (stride 3)");
            goto done;
        }
        p.rgb = (const uint8_t *)b[0].view.buf;
        p.rgb_rs = SP_STRIDE(b[0], 0);
    } else {
        const int64_t want[3] = {3, h, w};
        if (sp_shape(&b[0], want, "src") || sp_contiguous(&b[0], 0, "src")) goto done;
        p.planes = (const float *)b[0].view.buf;
    }
    {
        const int64_t want_y[2] = {h, w}, want_c[3] = {2, h, w + 4};
        if (sp_shape(&b[1], want_y, "y") || sp_contiguous(&b[1], 0, "y") ||
            sp_shape(&b[2], want_c, "c") || sp_contiguous(&b[2], 0, "c"))
            goto done;
    }
    if (parse_floats(coef, &p.m[0][0], 12, "coef")) goto done;
    p.y = (float *)b[1].view.buf;
    p.c = (float *)b[2].view.buf;
    p.h = h;
    p.w = w;
    p.replicate = replicate;
    if (run_threads(&p, NULL, h, threads, 16 * w)) goto done;
    result = Py_None;
    Py_INCREF(result);
done:
    sp_release(b, 3);
    return result;
}

static PyObject *py_post(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o_ph, *o_c, *o_out, *taps, *coef;
    int replicate, threads;
    double lo, hi, top;
    if (!PyArg_ParseTuple(args, "OOOOdddpOi", &o_ph, &o_c, &taps, &coef, &lo, &hi, &top,
                          &replicate, &o_out, &threads))
        return NULL;
    SpBuf b[3];
    memset(b, 0, sizeof b);
    PyObject *result = NULL;
    Post p;
    memset(&p, 0, sizeof p);
    int64_t ph_st[2];
    if (sp_get(o_ph, &b[0], 2, "f", 0, 0, "phases") || sp_get(o_c, &b[1], 3, "f", 0, 0, "c") ||
        sp_get(o_out, &b[2], 3, "Bf", 1, 0, "out"))
        goto done;
    const int64_t h = SP_SHAPE(b[1], 1), w = SP_SHAPE(b[1], 2) - 4, s2 = SP_SHAPE(b[0], 1);
    int s = 1;
    while (s <= MAX_S && (int64_t)s * s < s2) s++;
    if (h < 1 || w < 1 || (int64_t)s * s != s2 || s > MAX_S) {
        PyErr_Format(PyExc_ValueError,
                     "post: bad size %lld x %lld or phases %lld (a square of 1..%d)",
                     (long long)h, (long long)w, (long long)s2, MAX_S);
        goto done;
    }
    {
        const int64_t want_c[3] = {2, h, w + 4}, want_ph[2] = {h * w, s2};
        const int64_t want_out[3] = {(int64_t)s * h, (int64_t)s * w, 3};
        if (sp_shape(&b[1], want_c, "c") || sp_contiguous(&b[1], 0, "c") ||
            sp_shape(&b[0], want_ph, "phases") || sp_item_strides(&b[0], ph_st, "phases") ||
            sp_shape(&b[2], want_out, "out") || sp_dense_dim(&b[2], 2, "out"))
            goto done;
        const int64_t item = b[2].view.itemsize;
        if (SP_STRIDE(b[2], 1) != 3 * item || SP_STRIDE(b[2], 0) < 3 * item * s * w) {
            PyErr_Format(PyExc_ValueError,
                         "out: pixels must be dense and rows apart, got strides (%lld, %lld, "
                         "%lld)",
                         (long long)SP_STRIDE(b[2], 0), (long long)SP_STRIDE(b[2], 1),
                         (long long)SP_STRIDE(b[2], 2));
            goto done;
        }
    }
    float t[MAX_S * RING];
    if (parse_floats(taps, t, (Py_ssize_t)s * RING, "taps")) goto done;
    for (int i = 0; i < s; i++)
        for (int a = 0; a < RING; a++) p.taps[i][a] = t[i * RING + a];
    if (parse_floats(coef, &p.k[0][0], 12, "coef")) goto done;
    p.ph = (const float *)b[0].view.buf;
    p.ph_rs = ph_st[0];
    p.ph_cs = ph_st[1];
    p.c = (const float *)b[1].view.buf;
    p.h = h;
    p.w = w;
    p.s = s;
    p.lo = (float)lo;
    p.hi = (float)hi;
    p.top = (float)top;
    p.replicate = replicate;
    p.f32 = sp_format(&b[2].view)[0] == 'f';
    p.out = (char *)b[2].view.buf;
    p.out_rs = SP_STRIDE(b[2], 0);
    if (run_threads(NULL, &p, h, threads, 8 * (int64_t)s * s * w)) goto done;
    result = Py_None;
    Py_INCREF(result);
done:
    sp_release(b, 3);
    return result;
}

static PyMethodDef methods[] = {
    SP_ISA_METHODS,
    {"pre", py_pre, METH_VARARGS,
     "pre(src, y, c, coef, replicate, threads)\n\n"
     "uint8 RGB (h, w, 3) (any row stride, pixels dense) or contiguous float32 planes\n"
     "(3, h, w) -> Y into y (h, w) and chroma into c (2, h, w + 4), padded by 2 columns\n"
     "(both contiguous float32); coef: 12 floats, rows Y, C1, C2 of [r, g, b, offset].\n"
     "Buffers are checked (ValueError)."},
    {"post", py_post, METH_VARARGS,
     "post(phases, c, taps, coef, lo, hi, top, replicate, out, threads)\n\n"
     "Sub-pixel phases (h.w, s.s) float32 (any strides) and contiguous padded chroma\n"
     "(2, h, w + 4) -> RGB (s.h, s.w, 3) uint8 or float32 into out (any row stride, pixels\n"
     "dense). taps: s x 5 floats; coef: 12 floats, rows R, G, B of [kY, kC1, kC2, offset].\n"
     "Buffers are checked (ValueError)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_pipeline",
    "Fused colour/chroma stages of subpixel.fast.FastUpscaler (see subpixel/_csrc/pipeline.c).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__pipeline(void) { return PyModule_Create(&module); }

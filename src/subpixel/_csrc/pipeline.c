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
 * Threads: LR rows are shared out between `threads` pthreads; the GIL is released. The
 * inner loops are written for gcc's auto-vectoriser (SSE2 baseline); an AVX2 copy of every
 * kernel is selected at run time when the CPU has it. No FMA contraction (ISO C mode), so
 * both copies give the same values.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_S 8
#define MAX_THREADS 64
#define RING 5

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define HAVE_AVX2_CLONE 1
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define HAVE_AVX2_CLONE 0
#endif
#define INLINE static inline __attribute__((always_inline))

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

INLINE void pre_rows_impl(const Pre *p, int64_t r0, int64_t r1) {
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
                yy[x] = a0 * R + a1 * G + a2 * B + a3;
                u[x] = b0 * R + b1 * G + b2 * B + b3;
                v[x] = c0 * R + c1 * G + c2 * B + c3;
            }
        } else {
            const float *restrict pr = p->planes + r * w;
            const float *restrict pg = pr + h * w;
            const float *restrict pb = pg + h * w;
            for (int64_t x = 0; x < w; x++) {
                const float R = pr[x], G = pg[x], B = pb[x];
                yy[x] = a0 * R + a1 * G + a2 * B + a3;
                u[x] = b0 * R + b1 * G + b2 * B + b3;
                v[x] = c0 * R + c1 * G + c2 * B + c3;
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

static void pre_rows_base(const Pre *p, int64_t r0, int64_t r1) { pre_rows_impl(p, r0, r1); }
#if HAVE_AVX2_CLONE
TARGET_AVX2 static void pre_rows_avx2(const Pre *p, int64_t r0, int64_t r1) {
    pre_rows_impl(p, r0, r1);
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
                  const float (*taps)[RING]) {
    float t[MAX_S][RING];
    for (int j = 0; j < S; j++)
        for (int a = 0; a < RING; a++) t[j][a] = taps[j][a];
    for (int64_t x = 0; x < w; x++)
        for (int j = 0; j < S; j++)
            dst[x * S + j] = t[j][0] * src[x] + t[j][1] * src[x + 1] + t[j][2] * src[x + 2] +
                             t[j][3] * src[x + 3] + t[j][4] * src[x + 4];
}

/* Output row (y, i)'s Y in output order, clamped. */
INLINE void gather_y(const Post *p, int64_t y, int i, float *restrict dst, const int S) {
    const int64_t w = p->w;
    const float lo = p->lo, hi = p->hi;
    const float *base = p->ph + y * w * p->ph_rs + (int64_t)i * S * p->ph_cs;
    if (p->ph_cs == 1) { /* pixel-major: the phases of a pixel together */
        const float *restrict src = base;
        const int64_t rs = p->ph_rs;
        for (int64_t x = 0; x < w; x++)
            for (int j = 0; j < S; j++) {
                float v = src[x * rs + j];
                v = v < lo ? lo : v;
                dst[x * S + j] = v > hi ? hi : v;
            }
    } else if (p->ph_rs == 1) { /* phase-major: one plane per phase */
        for (int j = 0; j < S; j++) {
            const float *restrict src = base + j * p->ph_cs;
            for (int64_t x = 0; x < w; x++) {
                float v = src[x];
                v = v < lo ? lo : v;
                dst[x * S + j] = v > hi ? hi : v;
            }
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

/* One output row: the vertical 5-tap chroma filter over ring rows u0..u4 / v0..v4 (output
 * order), the colour matrix, clamping, and the interleaved store. */
#define COLOUR_ROW(NAME, TYPE, CONVERT)                                                        \
    INLINE void NAME(const float *restrict u0, const float *restrict u1,                       \
                     const float *restrict u2, const float *restrict u3,                       \
                     const float *restrict u4, const float *restrict v0,                       \
                     const float *restrict v1, const float *restrict v2,                       \
                     const float *restrict v3, const float *restrict v4,                       \
                     const float *restrict yr, TYPE *restrict d, int64_t n,                    \
                     const float *restrict tap, const float (*k)[4], float top) {              \
        const float t0 = tap[0], t1 = tap[1], t2 = tap[2], t3 = tap[3], t4 = tap[4];           \
        const float k00 = k[0][0], k01 = k[0][1], k02 = k[0][2], k03 = k[0][3];                \
        const float k10 = k[1][0], k11 = k[1][1], k12 = k[1][2], k13 = k[1][3];                \
        const float k20 = k[2][0], k21 = k[2][1], k22 = k[2][2], k23 = k[2][3];                \
        for (int64_t o = 0; o < n; o++) {                                                      \
            const float c1 = t0 * u0[o] + t1 * u1[o] + t2 * u2[o] + t3 * u3[o] + t4 * u4[o];   \
            const float c2 = t0 * v0[o] + t1 * v1[o] + t2 * v2[o] + t3 * v3[o] + t4 * v4[o];   \
            const float yv = yr[o];                                                            \
            float r = k00 * yv + k01 * c1 + k02 * c2 + k03;                                    \
            float g = k10 * yv + k11 * c1 + k12 * c2 + k13;                                    \
            float b = k20 * yv + k21 * c1 + k22 * c2 + k23;                                    \
            r = r < 0.0f ? 0.0f : r;                                                           \
            g = g < 0.0f ? 0.0f : g;                                                           \
            b = b < 0.0f ? 0.0f : b;                                                           \
            r = r > top ? top : r;                                                             \
            g = g > top ? top : g;                                                             \
            b = b > top ? top : b;                                                             \
            d[3 * o] = CONVERT(r);                                                             \
            d[3 * o + 1] = CONVERT(g);                                                         \
            d[3 * o + 2] = CONVERT(b);                                                         \
        }                                                                                      \
    }

#define TO_U8(v) ((uint8_t)(int32_t)(v))
#define TO_F32(v) (v)
COLOUR_ROW(colour_row_u8, uint8_t, TO_U8)
COLOUR_ROW(colour_row_f32, float, TO_F32)

INLINE void post_rows_impl(const Post *p, int64_t y0, int64_t y1, float *ring, int64_t *tag,
                           float *yrow, const int S) {
    const int64_t h = p->h, w = p->w, wp = w + 4, n = S * w;
    for (int64_t y = y0; y < y1; y++) {
        const float *hu[RING], *hv[RING];
        for (int a = 0; a < RING; a++) {
            const int64_t r = pad_index(y - 2 + a, h, p->replicate);
            const int slot = (int)(r % RING); /* the rows needed lie in y - 2 .. y + 2 */
            float *dst = ring + (int64_t)slot * 2 * n;
            if (tag[slot] != r) {
                hpass(p->c + r * wp, dst, w, S, p->taps);
                hpass(p->c + (h + r) * wp, dst + n, w, S, p->taps);
                tag[slot] = r;
            }
            hu[a] = dst;
            hv[a] = dst + n;
        }
        for (int i = 0; i < S; i++) {
            gather_y(p, y, i, yrow, S);
            char *row = p->out + (y * S + i) * p->out_rs;
            if (p->f32)
                colour_row_f32(hu[0], hu[1], hu[2], hu[3], hu[4], hv[0], hv[1], hv[2], hv[3],
                               hv[4], yrow, (float *)row, n, p->taps[i], p->k, p->top);
            else
                colour_row_u8(hu[0], hu[1], hu[2], hu[3], hu[4], hv[0], hv[1], hv[2], hv[3],
                              hv[4], yrow, (uint8_t *)row, n, p->taps[i], p->k, p->top);
        }
    }
}

INLINE void post_rows_dispatch(const Post *p, int64_t y0, int64_t y1, float *ring, int64_t *tag,
                               float *yrow) {
    switch (p->s) { /* constant factors: the phase loops unroll and vectorise */
    case 2: post_rows_impl(p, y0, y1, ring, tag, yrow, 2); return;
    case 3: post_rows_impl(p, y0, y1, ring, tag, yrow, 3); return;
    case 4: post_rows_impl(p, y0, y1, ring, tag, yrow, 4); return;
    default: post_rows_impl(p, y0, y1, ring, tag, yrow, p->s); return;
    }
}

static void post_rows_base(const Post *p, int64_t y0, int64_t y1, float *ring, int64_t *tag,
                           float *yrow) {
    post_rows_dispatch(p, y0, y1, ring, tag, yrow);
}
#if HAVE_AVX2_CLONE
TARGET_AVX2 static void post_rows_avx2(const Post *p, int64_t y0, int64_t y1, float *ring,
                                       int64_t *tag, float *yrow) {
    post_rows_dispatch(p, y0, y1, ring, tag, yrow);
}
#endif

static int cpu_has_avx2(void) {
#if HAVE_AVX2_CLONE
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return cached;
#else
    return 0;
#endif
}

static int allow_avx2 = 1; /* set_avx2(False): the baseline kernels (for tests) */

static int use_avx2(void) { return allow_avx2 && cpu_has_avx2(); }

/* ---- threads ----------------------------------------------------------------------- */

typedef struct {
    const Pre *pre;
    const Post *post;
    int64_t begin, end; /* LR rows */
    int avx2;
    int failed;
} Work;

static void *run_work(void *arg) {
    Work *wk = (Work *)arg;
    if (wk->begin >= wk->end) return NULL;
    if (wk->pre) {
#if HAVE_AVX2_CLONE
        if (wk->avx2) {
            pre_rows_avx2(wk->pre, wk->begin, wk->end);
            return NULL;
        }
#endif
        pre_rows_base(wk->pre, wk->begin, wk->end);
        return NULL;
    }
    const Post *p = wk->post;
    const int64_t n = (int64_t)p->s * p->w;
    float *buf = (float *)malloc(sizeof(float) * (size_t)((2 * RING + 1) * n + 16));
    if (!buf) {
        wk->failed = 1;
        return NULL;
    }
    int64_t tag[RING];
    for (int a = 0; a < RING; a++) tag[a] = -1;
    float *ring = buf, *yrow = buf + 2 * RING * n;
#if HAVE_AVX2_CLONE
    if (wk->avx2)
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
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (rows * work_per_row < ((int64_t)1 << 14)) threads = 1; /* not worth a thread */
    if (threads > rows) threads = (int)(rows > 0 ? rows : 1);
    const int avx2 = use_avx2();
    Work work[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (int k = 0; k < threads; k++) {
        work[k].pre = pre;
        work[k].post = post;
        work[k].begin = rows * k / threads;
        work[k].end = rows * (k + 1) / threads;
        work[k].avx2 = avx2;
        work[k].failed = 0;
    }
    for (int k = 1; k < threads; k++)
        started[k] = pthread_create(&tid[k], NULL, run_work, &work[k]) == 0;
    run_work(&work[0]);
    for (int k = 1; k < threads; k++) {
        if (started[k])
            pthread_join(tid[k], NULL);
        else
            run_work(&work[k]); /* could not start a thread: do its share here */
    }
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
    unsigned long long src, y_ptr, c_ptr;
    long long rgb_rs, h, w;
    int is_u8, replicate, threads;
    PyObject *coef;
    if (!PyArg_ParseTuple(args, "KpLLLKKOpi", &src, &is_u8, &rgb_rs, &h, &w, &y_ptr, &c_ptr,
                          &coef, &replicate, &threads))
        return NULL;
    if (h < 1 || w < 1) {
        PyErr_SetString(PyExc_ValueError, "pre: empty image");
        return NULL;
    }
    Pre p;
    memset(&p, 0, sizeof p);
    if (parse_floats(coef, &p.m[0][0], 12, "coef")) return NULL;
    if (is_u8) {
        p.rgb = (const uint8_t *)(uintptr_t)src;
        p.rgb_rs = rgb_rs;
    } else {
        p.planes = (const float *)(uintptr_t)src;
    }
    p.y = (float *)(uintptr_t)y_ptr;
    p.c = (float *)(uintptr_t)c_ptr;
    p.h = h;
    p.w = w;
    p.replicate = replicate;
    if (run_threads(&p, NULL, h, threads, 16 * w)) return NULL;
    Py_RETURN_NONE;
}

static PyObject *py_post(PyObject *self, PyObject *args) {
    (void)self;
    unsigned long long ph, c, out;
    long long ph_rs, ph_cs, h, w, out_rs;
    int s, replicate, f32, threads;
    double lo, hi, top;
    PyObject *taps, *coef;
    if (!PyArg_ParseTuple(args, "KLLKLLiOOdddpKLpi", &ph, &ph_rs, &ph_cs, &c, &h, &w, &s, &taps,
                          &coef, &lo, &hi, &top, &replicate, &out, &out_rs, &f32, &threads))
        return NULL;
    if (h < 1 || w < 1 || s < 1 || s > MAX_S) {
        PyErr_Format(PyExc_ValueError, "post: bad size %lld x %lld or scale %d", h, w, s);
        return NULL;
    }
    Post p;
    memset(&p, 0, sizeof p);
    float t[MAX_S * RING];
    if (parse_floats(taps, t, (Py_ssize_t)s * RING, "taps")) return NULL;
    for (int i = 0; i < s; i++)
        for (int a = 0; a < RING; a++) p.taps[i][a] = t[i * RING + a];
    if (parse_floats(coef, &p.k[0][0], 12, "coef")) return NULL;
    p.ph = (const float *)(uintptr_t)ph;
    p.ph_rs = ph_rs;
    p.ph_cs = ph_cs;
    p.c = (const float *)(uintptr_t)c;
    p.h = h;
    p.w = w;
    p.s = s;
    p.lo = (float)lo;
    p.hi = (float)hi;
    p.top = (float)top;
    p.replicate = replicate;
    p.f32 = f32;
    p.out = (char *)(uintptr_t)out;
    p.out_rs = out_rs;
    if (run_threads(NULL, &p, h, threads, 8 * (int64_t)s * s * w)) return NULL;
    Py_RETURN_NONE;
}

static PyObject *py_set_avx2(PyObject *self, PyObject *args) {
    (void)self;
    int allow;
    if (!PyArg_ParseTuple(args, "p", &allow)) return NULL;
    const int before = use_avx2();
    allow_avx2 = allow;
    return PyBool_FromLong(before);
}

static PyMethodDef methods[] = {
    {"set_avx2", py_set_avx2, METH_VARARGS,
     "set_avx2(allow) -> bool\n\n"
     "Allow (default) or forbid the AVX2 kernels; returns whether they were in use before.\n"
     "Both give the same values; forbidding them is for testing the baseline kernels."},
    {"pre", py_pre, METH_VARARGS,
     "pre(src, is_u8, src_row_stride, h, w, y, c, coef, replicate, threads)\n\n"
     "uint8 RGB (h, w, 3) (row stride in bytes, pixels dense) or float32 planes (3, h, w)\n"
     "at address src -> Y (h, w) at y and chroma (2, h, w + 4) at c, padded by 2 columns;\n"
     "coef: 12 floats, rows Y, C1, C2 of [r, g, b, offset]. No checks on the addresses."},
    {"post", py_post, METH_VARARGS,
     "post(phases, row_stride, col_stride, c, h, w, s, taps, coef, lo, hi, top, replicate,\n"
     "     out, out_row_stride, f32, threads)\n\n"
     "Sub-pixel phases (h.w, s.s) float32 (strides in elements) and padded chroma (2, h, w + 4)\n"
     "-> RGB (s.h, s.w, 3) uint8 or float32 (row stride in bytes, pixels dense) at out.\n"
     "taps: s x 5 floats; coef: 12 floats, rows R, G, B of [kY, kC1, kC2, offset].\n"
     "No checks on the addresses: callers pass live buffers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_pipeline",
    "Fused colour/chroma stages of subpixel.fast.FastUpscaler (see subpixel/_csrc/pipeline.c).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__pipeline(void) { return PyModule_Create(&module); }

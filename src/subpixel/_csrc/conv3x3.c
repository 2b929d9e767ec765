/* A 3x3 convolution with few output channels, for the last layer of ESPCN at x2 (32 channels
 * in, 4 out): in the int8 network (subpixel.fast._int8._CpuInt8, where oneDNN's fp32
 * convolution runs at ~50 GFLOPS) and in the fp32 one (subpixel.fast._fp32._CpuFp32, where
 * Winograd's 16-channel vectors would be three quarters padding; "valid" rows and
 * accumulation into the output there).
 *
 * subpixel._conv3x3.conv(...) computes, for every pixel (y, x) and output channel o,
 *   out[y, x, o] = bias[o] + sum_{c, dy, dx} in[y + dy - 1, x + dx - 1, c] . wt[o, c, dy, dx]
 * with zeros outside the image (padding 1). `in` (float32, or bfloat16 passed as 16-bit
 * integers) and `out` (float32), any strides; the weights are (c_out, c_in, 3, 3)
 * contiguous, c_out <= MAX_COUT. All are Python buffers (numpy arrays), checked against each
 * other (buffers.h): a wrong shape, format or layout raises ValueError.
 *
 * Method: each thread takes a band of output rows. The input rows it needs are transposed,
 * one row at a time, into a ring of three planar rows (c_in, wpad), zero-padded left and
 * right, so that V consecutive pixels of one channel are one vector load. The output is
 * then accumulated in registers, 4 output channels x XB vectors of V pixels at a time, each
 * loaded input vector feeding 4 fused multiply-adds with broadcast weights; a block of
 * results is written to `out` through a small buffer (any output layout).
 *
 * bfloat16 input (the weights are then rounded to bfloat16 too; products exact, sums in
 * float32): with AVX512-BF16, channels last and c_in even, pairs of channels are 32-bit
 * elements transposed as above and vdpbf16ps adds both products per lane (half the memory
 * and twice the multiply-adds per instruction); otherwise rows are converted to float32.
 *
 * Variants: AVX-512F (V = 16) and AVX2+FMA (V = 8) chosen at run time when the CPU has them
 * (__builtin_cpu_supports), SSE2 (V = 4, no FMA) as the x86-64 baseline, plain C elsewhere;
 * AVX512-BF16 (level 3) for bfloat16 input. set_isa() limits the choice, for tests.
 * Threads: pthreads over row bands, GIL released.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buffers.h"
#include "parallel.h"

#define MAX_COUT 16
#define MAX_CIN 1024
#define MAX_THREADS SP_MAX_THREADS
#define CB 4  /* output channels per register block */
#define XB 2  /* vectors of pixels per register block */
#define VMAX 16

#include "targets.h"
#if HAVE_X86 && (defined(__clang__) || __GNUC__ >= 10)
#define HAVE_BF16 1
#define TARGET_BF16 __attribute__((target("avx512f,avx512bf16,avx2,fma")))
#else
#define HAVE_BF16 0
#endif

enum { ISA_BASE = 0, ISA_AVX2 = 1, ISA_AVX512 = 2, ISA_BF16 = 3 };

typedef struct {
    const float *in;
    int64_t in_rs, in_ps, in_cs; /* strides (elements): row, pixel, channel */
    float *out;
    int64_t out_rs, out_ps, out_cs;
    int64_t h, w;
    int cin, cout, nblocks; /* nblocks = ceil(cout / CB) */
    const float *wp;        /* packed (nblocks, cin, 3, 3, CB), zero for o >= cout */
    const float *bias;      /* (nblocks * CB), zero-padded */
    int64_t wpad;           /* length of a transposed row: >= 2 + ceil(w / (V.XB)).V.XB */
    int bf16;               /* input elements are bfloat16 (converted to float32 rows) */
    int valid;              /* rows -1 and h exist (in points at row 0 of h + 2 rows) */
    int accumulate;         /* add to out's values instead of overwriting them */
    int pairs;              /* bfloat16 pairs of channels as 32-bit elements (AVX512-BF16) */
} Conv;

static inline float bf16_to_f32(uint16_t b) {
    const uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* float32 -> bfloat16 bits, rounded to nearest even (finite values). */
static inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* Planar float32 copy of bfloat16 input row y (any strides). */
static void transpose_row_bf16(const Conv *p, int64_t y, float *dst) {
    const int64_t w = p->w, wpad = p->wpad;
    const uint16_t *src = (const uint16_t *)(const void *)p->in + y * p->in_rs;
    for (int c = 0; c < p->cin; c++) {
        float *d = dst + c * wpad;
        const uint16_t *s = src + c * p->in_cs;
        d[0] = 0.0f;
        for (int64_t x = 0; x < w; x++) d[1 + x] = bf16_to_f32(s[x * p->in_ps]);
        memset(d + 1 + w, 0, sizeof(float) * (size_t)(wpad - 1 - w));
    }
}

/* Planar copy of input row y (or zeros outside the image): dst[c * wpad + 1 + x]. */
static void transpose_row(const Conv *p, int64_t y, float *dst) {
    const int64_t w = p->w, wpad = p->wpad;
    if (!p->valid && (y < 0 || y >= p->h)) {
        memset(dst, 0, sizeof(float) * (size_t)(p->cin * wpad));
        return;
    }
    const float *src = p->in + y * p->in_rs;
    for (int c = 0; c < p->cin; c++) {
        float *d = dst + c * wpad;
        const float *s = src + c * p->in_cs;
        d[0] = 0.0f;
        if (p->in_ps == 1) {
            memcpy(d + 1, s, sizeof(float) * (size_t)w);
        } else {
            const int64_t ps = p->in_ps;
            for (int64_t x = 0; x < w; x++) d[1 + x] = s[x * ps];
        }
        memset(d + 1 + w, 0, sizeof(float) * (size_t)(wpad - 1 - w));
    }
}

/* Channels-last rows (pixel stride == c_in, channel stride 1) transposed in tiles of 8
 * pixels: each source pixel's channels are contiguous, each destination row too. */
static void transpose_row_cl(const Conv *p, int64_t y, float *dst) {
    const int64_t w = p->w, wpad = p->wpad;
    const int cin = p->cin;
    const float *src = p->in + y * p->in_rs;
    for (int c = 0; c < cin; c++) dst[c * wpad] = 0.0f;
    int64_t x = 0;
    for (; x + 8 <= w; x += 8) {
        const float *s = src + x * cin;
        for (int c = 0; c < cin; c++) {
            float *d = dst + c * wpad + 1 + x;
            for (int k = 0; k < 8; k++) d[k] = s[k * cin + c];
        }
    }
    for (; x < w; x++)
        for (int c = 0; c < cin; c++) dst[c * wpad + 1 + x] = src[x * cin + c];
    for (int c = 0; c < cin; c++)
        memset(dst + c * wpad + 1 + w, 0, sizeof(float) * (size_t)(wpad - 1 - w));
}

#if HAVE_X86
/* transpose_row_cl with 4x4 (SSE2) or 8x8 (AVX) register transposes: c_in % W == 0. */
static void transpose_row_cl_sse2(const Conv *p, int64_t y, float *dst) {
    const int64_t w = p->w, wpad = p->wpad;
    const int cin = p->cin;
    const float *src = p->in + y * p->in_rs;
    int64_t x = 0;
    for (; x + 4 <= w; x += 4) {
        const float *s = src + x * cin;
        for (int c = 0; c < cin; c += 4) {
            __m128 r0 = _mm_loadu_ps(s + c), r1 = _mm_loadu_ps(s + cin + c);
            __m128 r2 = _mm_loadu_ps(s + 2 * cin + c), r3 = _mm_loadu_ps(s + 3 * cin + c);
            _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
            float *d = dst + c * wpad + 1 + x;
            _mm_storeu_ps(d, r0);
            _mm_storeu_ps(d + wpad, r1);
            _mm_storeu_ps(d + 2 * wpad, r2);
            _mm_storeu_ps(d + 3 * wpad, r3);
        }
    }
    for (; x < w; x++)
        for (int c = 0; c < cin; c++) dst[c * wpad + 1 + x] = src[x * cin + c];
    for (int c = 0; c < cin; c++) {
        dst[c * wpad] = 0.0f;
        memset(dst + c * wpad + 1 + w, 0, sizeof(float) * (size_t)(wpad - 1 - w));
    }
}

TARGET_AVX2 static void transpose_row_cl_avx2(const Conv *p, int64_t y, float *dst) {
    const int64_t w = p->w, wpad = p->wpad;
    const int cin = p->cin;
    const float *src = p->in + y * p->in_rs;
    int64_t x = 0;
    for (; x + 8 <= w; x += 8) {
        const float *s = src + x * cin;
        for (int c = 0; c < cin; c += 8) {
            const __m256 r0 = _mm256_loadu_ps(s + c), r1 = _mm256_loadu_ps(s + cin + c);
            const __m256 r2 = _mm256_loadu_ps(s + 2 * cin + c);
            const __m256 r3 = _mm256_loadu_ps(s + 3 * cin + c);
            const __m256 r4 = _mm256_loadu_ps(s + 4 * cin + c);
            const __m256 r5 = _mm256_loadu_ps(s + 5 * cin + c);
            const __m256 r6 = _mm256_loadu_ps(s + 6 * cin + c);
            const __m256 r7 = _mm256_loadu_ps(s + 7 * cin + c);
            const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
            const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
            const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
            const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
            float *d = dst + c * wpad + 1 + x;
            _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_storeu_ps(d + wpad, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_storeu_ps(d + 2 * wpad, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_storeu_ps(d + 3 * wpad, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_storeu_ps(d + 4 * wpad, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_storeu_ps(d + 5 * wpad, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_storeu_ps(d + 6 * wpad, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_storeu_ps(d + 7 * wpad, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
    }
    for (; x < w; x++)
        for (int c = 0; c < cin; c++) dst[c * wpad + 1 + x] = src[x * cin + c];
    for (int c = 0; c < cin; c++) {
        dst[c * wpad] = 0.0f;
        memset(dst + c * wpad + 1 + w, 0, sizeof(float) * (size_t)(wpad - 1 - w));
    }
}
#endif

/* Write a block of results buf[k][i] (k < CB output channels, i < n pixels) of row y. */
static void store_block(const Conv *p, int64_t y, int64_t x0, int o0, int n, int vxb,
                        const float *buf) {
    const int ko = p->cout - o0 < CB ? p->cout - o0 : CB;
    float *base = p->out + y * p->out_rs + x0 * p->out_ps + o0 * p->out_cs;
    if (p->out_cs == 1 && ko == CB && !p->accumulate) {
        for (int i = 0; i < n; i++) {
            float *d = base + i * p->out_ps;
            for (int k = 0; k < CB; k++) d[k] = buf[k * vxb + i];
        }
        return;
    }
    if (p->accumulate) {
        for (int i = 0; i < n; i++)
            for (int k = 0; k < ko; k++) base[i * p->out_ps + k * p->out_cs] += buf[k * vxb + i];
        return;
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < ko; k++) base[i * p->out_ps + k * p->out_cs] = buf[k * vxb + i];
}

/* One output row from the three transposed rows r[0..2] (rows y - 1, y, y + 1).
 * VT: vector type of V floats; LOAD/SET1/FMA/STORE: its operations. */
#define DEFINE_ROW(NAME, ATTR, VT, V, LOAD, SET1, FMA, STORE)                                 \
    ATTR static void NAME(const Conv *p, float *const r[3], int64_t y, const float *pf) {     \
        float buf[CB * V * XB] __attribute__((aligned(64)));                                  \
        const int cin = p->cin;                                                                \
        const int64_t wpad = p->wpad;                                                          \
        for (int b = 0; b < p->nblocks; b++) {                                                 \
            const float *wb = p->wp + (int64_t)b * cin * 9 * CB;                               \
            const float *bb = p->bias + b * CB;                                                \
            for (int64_t x0 = 0; x0 < p->w; x0 += V * XB) {                                    \
                if (pf && b == 0) /* the next input row's pixels, while computing */          \
                    for (int64_t i = x0 * cin; i < (x0 + V * XB) * cin; i += 16)               \
                        __builtin_prefetch(pf + i);                                            \
                VT a00 = SET1(bb[0]), a01 = a00, a10 = SET1(bb[1]), a11 = a10;                 \
                VT a20 = SET1(bb[2]), a21 = a20, a30 = SET1(bb[3]), a31 = a30;                 \
                const float *wt = wb;                                                          \
                for (int c = 0; c < cin; c++) {                                                \
                    for (int dy = 0; dy < 3; dy++) {                                           \
                        const float *s = r[dy] + c * wpad + x0;                                \
                        for (int dx = 0; dx < 3; dx++, wt += CB) {                             \
                            const VT v0 = LOAD(s + dx), v1 = LOAD(s + dx + V);                 \
                            const VT w0 = SET1(wt[0]), w1 = SET1(wt[1]);                       \
                            const VT w2 = SET1(wt[2]), w3 = SET1(wt[3]);                       \
                            a00 = FMA(v0, w0, a00);                                            \
                            a01 = FMA(v1, w0, a01);                                            \
                            a10 = FMA(v0, w1, a10);                                            \
                            a11 = FMA(v1, w1, a11);                                            \
                            a20 = FMA(v0, w2, a20);                                            \
                            a21 = FMA(v1, w2, a21);                                            \
                            a30 = FMA(v0, w3, a30);                                            \
                            a31 = FMA(v1, w3, a31);                                            \
                        }                                                                      \
                    }                                                                          \
                }                                                                              \
                STORE(buf, a00);                                                               \
                STORE(buf + V, a01);                                                           \
                STORE(buf + V * XB, a10);                                                      \
                STORE(buf + V * XB + V, a11);                                                  \
                STORE(buf + 2 * V * XB, a20);                                                  \
                STORE(buf + 2 * V * XB + V, a21);                                              \
                STORE(buf + 3 * V * XB, a30);                                                  \
                STORE(buf + 3 * V * XB + V, a31);                                              \
                const int64_t n = p->w - x0 < V * XB ? p->w - x0 : V * XB;                     \
                store_block(p, y, x0, b * CB, (int)n, V * XB, buf);                            \
            }                                                                                  \
        }                                                                                      \
    }

#if !HAVE_X86
/* Plain C (any CPU): "vectors" of one float. */
typedef float f1;
#define P_LOAD(ptr) (*(ptr))
#define P_SET1(v) (v)
#define P_FMA(a, b, c) ((a) * (b) + (c))
#define P_STORE(ptr, v) (*(ptr) = (v))
DEFINE_ROW(row_plain, , f1, 1, P_LOAD, P_SET1, P_FMA, P_STORE)
#else
#define S_FMA(a, b, c) _mm_add_ps(_mm_mul_ps(a, b), c)
DEFINE_ROW(row_sse2, , __m128, 4, _mm_loadu_ps, _mm_set1_ps, S_FMA, _mm_store_ps)
DEFINE_ROW(row_avx2, TARGET_AVX2, __m256, 8, _mm256_loadu_ps, _mm256_set1_ps, _mm256_fmadd_ps,
           _mm256_store_ps)
DEFINE_ROW(row_avx512, TARGET_AVX512, __m512, 16, _mm512_loadu_ps, _mm512_set1_ps,
           _mm512_fmadd_ps, _mm512_store_ps)
#if HAVE_BF16
/* bfloat16 pairs: "channel" c is the pair (2c, 2c + 1), a weight the two bfloat16 of the
 * pair's taps as one 32-bit value; vdpbf16ps adds both products to the float32 sums. */
#define BF_FMA(v, w, acc)                                                                      \
    _mm512_dpbf16_ps(acc, (__m512bh)_mm512_castps_si512(v), (__m512bh)_mm512_castps_si512(w))
DEFINE_ROW(row_bf16, TARGET_BF16, __m512, 16, _mm512_loadu_ps, _mm512_set1_ps, BF_FMA,
           _mm512_store_ps)
#endif
#endif

static int cpu_isa(void) {
#if HAVE_X86
    __builtin_cpu_init();
#if HAVE_BF16
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16")) return ISA_BF16;
#endif
    if (__builtin_cpu_supports("avx512f")) return ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return ISA_AVX2;
#endif
    return ISA_BASE;
}

#define SP_ISA_TOP ISA_BF16
#include "isa.h"

static int isa_width(int isa) {
#if HAVE_X86
    return isa >= ISA_AVX512 ? 16 : (isa == ISA_AVX2 ? 8 : 4);
#else
    (void)isa;
    return 1;
#endif
}

/* ---- threads ----------------------------------------------------------------------- */

typedef struct {
    const Conv *p;
    int64_t begin, end; /* output rows */
    int isa;
    int failed;
} Work;

static void *run_work(void *arg) {
    Work *wk = (Work *)arg;
    const Conv *p = wk->p;
    if (wk->begin >= wk->end) return NULL;
    const int64_t plane = (int64_t)p->cin * p->wpad;
    float *ring = (float *)malloc(sizeof(float) * (size_t)(3 * plane + VMAX));
    if (!ring) {
        wk->failed = 1;
        return NULL;
    }
    const int cl = !p->bf16 && p->in_cs == 1 && p->in_ps == p->cin;
    void (*tr)(const Conv *, int64_t, float *) =
        p->bf16 ? transpose_row_bf16 : (cl ? transpose_row_cl : transpose_row);
#if HAVE_X86
    if (cl && wk->isa >= ISA_AVX2 && p->cin % 8 == 0)
        tr = transpose_row_cl_avx2;
    else if (cl && p->cin % 4 == 0)
        tr = transpose_row_cl_sse2;
#endif
    int64_t tag[3] = {INT64_MIN, INT64_MIN, INT64_MIN};
    for (int64_t y = wk->begin; y < wk->end; y++) {
        float *r[3];
        for (int dy = 0; dy < 3; dy++) {
            const int64_t yy = y + dy - 1;
            const int slot = (int)(((yy % 3) + 3) % 3);
            float *dst = ring + slot * plane;
            if (tag[slot] != yy) {
                if (p->valid || (yy >= 0 && yy < p->h))
                    tr(p, yy, dst);
                else
                    transpose_row(p, yy, dst); /* zeros */
                tag[slot] = yy;
            }
            r[dy] = dst;
        }
        /* channels last: prefetch the row transposed next (its last pixels may be past
         * the row; prefetches do not fault) */
        const float *pf = cl && y + 2 < p->h ? p->in + (y + 2) * p->in_rs : NULL;
#if HAVE_X86
#if HAVE_BF16
        if (p->pairs)
            row_bf16(p, r, y, pf);
        else
#endif
        if (wk->isa >= ISA_AVX512)
            row_avx512(p, r, y, pf);
        else if (wk->isa == ISA_AVX2)
            row_avx2(p, r, y, pf);
        else
            row_sse2(p, r, y, pf);
#else
        row_plain(p, r, y, pf);
#endif
    }
    free(ring);
    return NULL;
}

static int run_threads(const Conv *p, int threads, int isa) {
    const int64_t rows = p->h;
    threads = sp_threads_for(threads, rows * p->w * p->cin * p->cout, 1 << 18); /* MAC/9 each */
    if (threads > rows) threads = (int)rows;
    Work work[MAX_THREADS];
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (int k = 0; k < threads; k++) {
        work[k].p = p;
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

static PyObject *py_conv(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    static char *names[] = {"in", "bf16", "out", "weight", "bias", "threads", "valid",
                            "accumulate", NULL};
    PyObject *o_in, *o_out, *o_wt, *o_bias;
    int threads, bf16, valid = 0, accumulate = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OpOOOi|pp", names, &o_in, &bf16, &o_out,
                                     &o_wt, &o_bias, &threads, &valid, &accumulate))
        return NULL;
    if (valid && bf16) {
        PyErr_SetString(PyExc_ValueError, "conv: valid rows are for float32 input");
        return NULL;
    }
    SpBuf b[4];
    memset(b, 0, sizeof b);
    PyObject *result = NULL;
    int64_t ist[3], ost[3];
    /* in: (rows, w, c_in) float32, or bfloat16 as 16-bit integers; out (h, w, c_out) */
    if (sp_get(o_in, &b[0], 3, bf16 ? "hH" : "f", 0, 0, "in") ||
        sp_get(o_out, &b[1], 3, "f", 1, 0, "out") ||
        sp_get(o_wt, &b[2], 4, "f", 0, 0, "weight") ||
        sp_get(o_bias, &b[3], 1, "f", 0, 0, "bias"))
        goto done;
    const int64_t h = SP_SHAPE(b[0], 0) - (valid ? 2 : 0), w = SP_SHAPE(b[0], 1);
    const int64_t cin = SP_SHAPE(b[0], 2), cout = SP_SHAPE(b[1], 2);
    if (h < 1 || w < 1 || cin < 1 || cin > MAX_CIN || cout < 1 || cout > MAX_COUT) {
        PyErr_Format(PyExc_ValueError, "conv: bad size %lld x %lld, %lld -> %lld channels%s",
                     (long long)h, (long long)w, (long long)cin, (long long)cout,
                     valid ? " (valid: the input has 2 more rows)" : "");
        goto done;
    }
    {
        const int64_t want_out[3] = {h, w, cout}, want_wt[4] = {cout, cin, 3, 3};
        const int64_t want_b[1] = {cout};
        if (sp_item_strides(&b[0], ist, "in") || sp_shape(&b[1], want_out, "out") ||
            sp_item_strides(&b[1], ost, "out") || sp_apart(&b[1], "out") ||
            sp_shape(&b[2], want_wt, "weight") || sp_contiguous(&b[2], 0, "weight") ||
            sp_shape(&b[3], want_b, "bias") || sp_contiguous(&b[3], 0, "bias"))
            goto done;
    }
    {
        const long long in_rs = ist[0], in_ps = ist[1], in_cs = ist[2];
        const int isa = use_isa();
        const int vxb = isa_width(isa) * XB;
        Conv p;
        memset(&p, 0, sizeof p);
        p.in = (const float *)b[0].view.buf + (valid ? in_rs : 0); /* row -1 is the first */
        p.valid = valid;
        p.accumulate = accumulate;
        p.in_rs = in_rs;
        p.in_ps = in_ps;
        p.in_cs = in_cs;
        p.out = (float *)b[1].view.buf;
        p.out_rs = ost[0];
        p.out_ps = ost[1];
        p.out_cs = ost[2];
        p.h = h;
        p.w = w;
        p.cin = (int)cin;
        p.cout = (int)cout;
        p.nblocks = (cout + CB - 1) / CB;
        p.wpad = 2 + (w + vxb - 1) / vxb * vxb;
        p.bf16 = bf16;
        /* bfloat16 channels last, an even number of them: pairs of channels as 32-bit values */
        p.pairs = bf16 && isa == ISA_BF16 && cin % 2 == 0 && in_cs == 1 && in_ps == cin &&
                  in_rs % 2 == 0;
        const float *wsrc = (const float *)b[2].view.buf, *bsrc = (const float *)b[3].view.buf;
        const size_t nw = (size_t)p.nblocks * cin * 9 * CB;
        float *wp = (float *)calloc(nw + (size_t)p.nblocks * CB, sizeof(float));
        if (!wp) {
            PyErr_NoMemory();
            goto done;
        }
        float *bp = wp + nw;
        for (int o = 0; o < cout; o++) {
            const int blk = o / CB, k = o % CB;
            bp[o] = bsrc[o];
            for (int c = 0; c < cin; c++)
                for (int t = 0; t < 9; t++) {
                    const float v = wsrc[((int64_t)o * cin + c) * 9 + t];
                    const int64_t at = (((int64_t)blk * cin + c) * 9 + t) * CB + k;
                    if (p.pairs) { /* bfloat16 of channel 2c' at the low half, 2c' + 1 high */
                        const int64_t at2 =
                            (((int64_t)blk * (cin / 2) + c / 2) * 9 + t) * CB + k;
                        uint16_t *h16 = (uint16_t *)(void *)(wp + at2);
                        h16[c % 2] = f32_to_bf16(v);
                    } else {
                        wp[at] = bf16 ? bf16_to_f32(f32_to_bf16(v)) : v;
                    }
                }
        }
        p.wp = wp;
        p.bias = bp;
        if (p.pairs) { /* the kernel sees cin / 2 channels of 32 bits */
            p.cin = cin / 2;
            p.in_rs = in_rs / 2;
            p.in_ps = cin / 2;
            p.bf16 = 0;
        }
        const int rc = run_threads(&p, threads, isa);
        free(wp);
        if (rc) goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    sp_release(b, 4);
    return result;
}

static PyMethodDef methods[] = {
    SP_ISA_METHODS,
    {"conv", (PyCFunction)(void (*)(void))py_conv, METH_VARARGS | METH_KEYWORDS,
     "conv(in, bf16, out, weight, bias, threads, valid=False, accumulate=False)\n\n"
     "3x3 convolution, zero padding 1, of float32 (or, if bf16, bfloat16 given as 16-bit\n"
     "integers: the weights are then rounded to bfloat16 too) in (h, w, c_in), any strides,\n"
     "into float32 out (h, w, c_out), any strides keeping its elements apart; weight\n"
     "(c_out, c_in, 3, 3) and bias (c_out,) float32 contiguous; c_out <= 16.\n"
     "valid (float32 only): the input has h + 2 rows and no zero rows are added above and\n"
     "below. accumulate: the results are added to out's values. Buffers are checked\n"
     "(ValueError)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_conv3x3",
    "3x3 convolution with few output channels (see subpixel/_csrc/conv3x3.c).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__conv3x3(void) { return PyModule_Create(&module); }

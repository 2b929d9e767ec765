/* OpenCV dnn_superres's uint8 processing around a Y network, fused (subpixel.fast's
 * OpenCVUpscaler; the numpy reference is subpixel.interop.opencv_pipeline).
 *
 * subpixel._opencv_levels.pre(rgb, y, cr, cb, threads):
 *   uint8 RGB (h, w, 3) -> cvtColor(RGB2YCrCb) in OpenCV's integer arithmetic (14-bit
 *   coefficients, rounded, saturated): Y as float32 level * f32(1/255) (convertTo(CV_32F,
 *   1/255)) into y (h, w), Cr and Cb as uint8 levels into cr, cb (h, w).
 *
 * subpixel._opencv_levels.post(phases, alpha, beta, cr, cb, s, out, threads):
 *   the network's sub-pixel phases (h.w, s.s) float32 (column i.s + j; any strides) and the
 *   chroma levels -> RGB (s.h, s.w, 3) uint8. For output pixel (Y, X):
 *     Y8  = sat(rint(255 . (alpha . phase + beta)))          (convertTo(CV_8U, 255))
 *     Cq8 = sat(rint(255 . bilinear(Cq8 . f32(1/255))))      (cv::resize INTER_LINEAR:
 *           half-pixel centres, replicated border, a + (b - a).w per pass, horizontal first)
 *     RGB = cvtColor(YCrCb2RGB) on the uint8 levels (integer arithmetic).
 *   rint rounds half to even, as OpenCV's cvRound.
 *
 * Every argument is a Python buffer (numpy array, memoryview): sizes, formats and strides are
 * checked against each other and a mismatch raises ValueError; nothing trusts an address.
 * Output rows are shared out between `threads` pthreads with the GIL released.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buffers.h"
#include "parallel.h"
#include "targets.h"

#define SP_ISA_STANDARD
#define SP_ISA_TOP 2
#include "isa.h"

#define INLINE static inline __attribute__((always_inline))

#define SHIFT 14
#define HALF (1 << (SHIFT - 1))
#define DESCALE(x) (((x) + HALF) >> SHIFT)

static const float INV255 = (float)(1.0 / 255.0);

INLINE int sat8(int v) { return v < 0 ? 0 : (v > 255 ? 255 : v); }

/* rint(t) for 0 <= t < 2^22 in the default rounding mode (to nearest, ties to even), as
 * cvRound; written so that the compiler can vectorise it (no libm call). */
INLINE float rint_small(float t) { return (t + 12582912.0f) - 12582912.0f; }

INLINE int round8(float v) { /* convertTo(CV_8U, 255): rint(v * 255), saturated */
    float t = v * 255.0f;
    t = t > 0.0f ? t : 0.0f; /* NaN too */
    t = t < 255.0f ? t : 255.0f;
    return (int)rint_small(t);
}

/* a + (b - a) * w with one rounding to float (float64 holds the product exactly). */
INLINE float lerp(float a, float b, float w) {
    return (float)((double)a + (double)(b - a) * (double)w);
}

/* cv::resize's source index and second-tap weight for output coordinate o (of n inputs). */
INLINE void linear_tap(int64_t o, int s, int64_t n, int64_t *i0, int64_t *i1, float *f) {
    double pos = ((double)o + 0.5) * (1.0 / s) - 0.5;
    int64_t i = (int64_t)floor(pos);
    float frac = (float)(pos - (double)i);
    if (i < 0) {
        frac = 0.0f;
        i = 0;
    }
    if (i >= n - 1) {
        frac = 0.0f;
        i = n - 1;
    }
    *i0 = i;
    *i1 = i + 1 < n ? i + 1 : n - 1;
    *f = frac;
}

/* ---- buffers (buffers.h) ------------------------------------------------------------ */

#define SHAPE(b, d) SP_SHAPE(b, d)
#define STRIDE(b, d) SP_STRIDE(b, d)

static int check_plane(const SpBuf *b, int64_t h, int64_t w, int64_t item, const char *what) {
    if (SHAPE(*b, 0) != h || SHAPE(*b, 1) != w || STRIDE(*b, 1) != item ||
        STRIDE(*b, 0) < w * item) {
        PyErr_Format(PyExc_ValueError,
                     "%s: expected (%lld, %lld) with dense rows, got (%lld, %lld) with strides "
                     "(%lld, %lld)",
                     what, (long long)h, (long long)w, (long long)SHAPE(*b, 0),
                     (long long)SHAPE(*b, 1), (long long)STRIDE(*b, 0), (long long)STRIDE(*b, 1));
        return -1;
    }
    return 0;
}

static int check_rgb(const SpBuf *b, int64_t h, int64_t w, const char *what) {
    if (SHAPE(*b, 0) != h || SHAPE(*b, 1) != w || SHAPE(*b, 2) != 3 || STRIDE(*b, 2) != 1 ||
        STRIDE(*b, 1) != 3 || STRIDE(*b, 0) < 3 * w) {
        PyErr_Format(PyExc_ValueError,
                     "%s: expected (%lld, %lld, 3) uint8 with dense pixels, got (%lld, %lld, "
                     "%lld) with strides (%lld, %lld, %lld)",
                     what, (long long)h, (long long)w, (long long)SHAPE(*b, 0),
                     (long long)SHAPE(*b, 1), (long long)SHAPE(*b, 2), (long long)STRIDE(*b, 0),
                     (long long)STRIDE(*b, 1), (long long)STRIDE(*b, 2));
        return -1;
    }
    return 0;
}

/* ---- pre ---------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *rgb;
    int64_t rgb_rs, y_rs, c_rs, w;
    float *y;
    uint8_t *cr, *cb;
    int64_t begin, end;
} Pre;

static void *pre_rows(void *arg) {
    const Pre *p = (const Pre *)arg;
    for (int64_t r = p->begin; r < p->end; r++) {
        const uint8_t *src = p->rgb + r * p->rgb_rs;
        float *y = (float *)((char *)p->y + r * p->y_rs);
        uint8_t *cr = p->cr + r * p->c_rs, *cb = p->cb + r * p->c_rs;
        for (int64_t x = 0; x < p->w; x++) {
            int R = src[3 * x], G = src[3 * x + 1], B = src[3 * x + 2];
            int Y = sat8(DESCALE(R * 4899 + G * 9617 + B * 1868));
            cr[x] = (uint8_t)sat8(DESCALE((R - Y) * 11682 + (128 << SHIFT)));
            cb[x] = (uint8_t)sat8(DESCALE((B - Y) * 9241 + (128 << SHIFT)));
            y[x] = (float)Y * INV255;
        }
    }
    return NULL;
}

static PyObject *py_pre(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o_rgb, *o_y, *o_cr, *o_cb;
    int threads;
    if (!PyArg_ParseTuple(args, "OOOOi", &o_rgb, &o_y, &o_cr, &o_cb, &threads)) return NULL;
    SpBuf b[4];
    memset(b, 0, sizeof b);
    PyObject *result = NULL;
    if (sp_get(o_rgb, &b[0], 3, "B", 0, 0, "rgb") || sp_get(o_y, &b[1], 2, "f", 1, 0, "y") ||
        sp_get(o_cr, &b[2], 2, "B", 1, 0, "cr") || sp_get(o_cb, &b[3], 2, "B", 1, 0, "cb"))
        goto done;
    int64_t h = SHAPE(b[0], 0), w = SHAPE(b[0], 1);
    if (h < 1 || w < 1) {
        PyErr_SetString(PyExc_ValueError, "pre: empty image");
        goto done;
    }
    if (check_rgb(&b[0], h, w, "rgb") || check_plane(&b[1], h, w, 4, "y") ||
        check_plane(&b[2], h, w, 1, "cr") || check_plane(&b[3], h, w, 1, "cb"))
        goto done;
    if (STRIDE(b[2], 0) != STRIDE(b[3], 0)) {
        PyErr_SetString(PyExc_ValueError, "cr and cb must have the same row stride");
        goto done;
    }
    {
        Pre work[SP_MAX_THREADS];
        int n = sp_threads_for(threads, h * w, 1 << 15);
        if (n > h) n = (int)h;
        for (int k = 0; k < n; k++) {
            work[k] = (Pre){(const uint8_t *)b[0].view.buf,
                            STRIDE(b[0], 0),
                            STRIDE(b[1], 0),
                            STRIDE(b[2], 0),
                            w,
                            (float *)b[1].view.buf,
                            (uint8_t *)b[2].view.buf,
                            (uint8_t *)b[3].view.buf,
                            h * k / n,
                            h * (k + 1) / n};
        }
        Py_BEGIN_ALLOW_THREADS
        sp_parallel_for(pre_rows, work, sizeof(Pre), n);
        Py_END_ALLOW_THREADS
    }
    result = Py_None;
    Py_INCREF(result);
done:
    sp_release(b, 4);
    return result;
}

/* ---- post --------------------------------------------------------------------------- */

typedef struct {
    const char *ph;
    int64_t ph_rs, ph_cs; /* bytes */
    float alpha, beta;
    const uint8_t *cr, *cb;
    int64_t c_rs, h, w;
    int s;
    char *out;
    int64_t out_rs;
    const int64_t *x0, *x1;
    const float *fx;
    int64_t begin, end; /* output rows */
    int failed;
    int isa; /* which copy of the loops (isa.h) */
} Post;

/* The horizontally resized chroma row of source row `y` of plane q, cached per thread. */
INLINE const float *hrow(const Post *p, int q, int64_t y, float *cache, int64_t *tag) {
    const int64_t W = (int64_t)p->s * p->w;
    int slot = (int)(y & 1);
    float *row = cache + (2 * q + slot) * W;
    if (tag[2 * q + slot] == y) return row;
    const uint8_t *a = (q ? p->cb : p->cr) + y * p->c_rs;
    for (int64_t X = 0; X < W; X++)
        row[X] = lerp((float)a[p->x0[X]] * INV255, (float)a[p->x1[X]] * INV255, p->fx[X]);
    tag[2 * q + slot] = y;
    return row;
}

/* Output rows [begin, end); S is p->s, a compile-time constant in the common cases so that
 * the phase gather unrolls. Every loop is branch-free for the vectoriser (-fno-trapping-math
 * lets it turn the clamps into min/max); the ISA copies below compute the same values. */
INLINE void post_body(const Post *p, float *buf, const int S) {
    const int64_t W = (int64_t)S * p->w;
    float *cache = buf, *ybuf = buf + 4 * W;
    int16_t *lv = (int16_t *)(buf + 5 * W);
    int64_t tag[4] = {-1, -1, -1, -1};
    const int dense = p->ph_cs == (int64_t)sizeof(float) && p->ph_rs == (int64_t)(S * S) * 4;
    for (int64_t R = p->begin; R < p->end; R++) {
        int64_t y0, y1;
        float fy;
        linear_tap(R, S, p->h, &y0, &y1, &fy);
        const float *cr0 = hrow(p, 0, y0, cache, tag), *cr1 = hrow(p, 0, y1, cache, tag);
        const float *cb0 = hrow(p, 1, y0, cache, tag), *cb1 = hrow(p, 1, y1, cache, tag);
        const int64_t r = R / S, i = R % S;
        if (dense) { /* phase row i of every pixel: S consecutive floats, S*S apart */
            const float *src = (const float *)(p->ph + r * p->w * p->ph_rs) + i * S;
            for (int64_t x = 0; x < p->w; x++)
                for (int j = 0; j < S; j++) ybuf[x * S + j] = src[x * S * S + j];
        } else {
            for (int j = 0; j < S; j++) { /* Y of the row's phase column (i, j), gathered */
                const char *col = p->ph + r * p->w * p->ph_rs + (int64_t)(i * S + j) * p->ph_cs;
                for (int64_t x = 0; x < p->w; x++)
                    ybuf[x * S + j] = *(const float *)(col + x * p->ph_rs);
            }
        }
        const float alpha = p->alpha, beta = p->beta;
        /* levels, one simple loop each (vectorised), then the integer colour conversion */
        for (int64_t X = 0; X < W; X++) {
            float yv = ybuf[X] * alpha;
            yv = yv + beta;
            lv[X] = (int16_t)round8(yv);
        }
        for (int64_t X = 0; X < W; X++)
            lv[W + X] = (int16_t)(round8(lerp(cr0[X], cr1[X], fy)) - 128);
        for (int64_t X = 0; X < W; X++)
            lv[2 * W + X] = (int16_t)(round8(lerp(cb0[X], cb1[X], fy)) - 128);
        uint8_t *dst = (uint8_t *)(p->out + R * p->out_rs);
        const int16_t *yl = lv, *crl = lv + W, *cbl = lv + 2 * W;
        for (int64_t X = 0; X < W; X++) {
            int Y = yl[X], Cr = crl[X], Cb = cbl[X];
            dst[3 * X] = (uint8_t)sat8(Y + DESCALE(Cr * 22987));
            dst[3 * X + 1] = (uint8_t)sat8(Y + DESCALE(Cb * -5636 + Cr * -11698));
            dst[3 * X + 2] = (uint8_t)sat8(Y + DESCALE(Cb * 29049));
        }
    }
}

INLINE void post_scaled(const Post *p, float *buf) {
    switch (p->s) {
    case 2: post_body(p, buf, 2); return;
    case 3: post_body(p, buf, 3); return;
    case 4: post_body(p, buf, 4); return;
    default: post_body(p, buf, p->s); return;
    }
}

static void post_base(const Post *p, float *buf) { post_scaled(p, buf); }
#if HAVE_X86
TARGET_AVX2 static void post_avx2(const Post *p, float *buf) { post_scaled(p, buf); }
TARGET_AVX512 static void post_avx512(const Post *p, float *buf) { post_scaled(p, buf); }
#endif

static void *post_rows(void *arg) {
    Post *p = (Post *)arg;
    const int64_t W = (int64_t)p->s * p->w;
    float *buf = (float *)malloc(sizeof(float) * (size_t)(5 * W) +
                                 sizeof(int16_t) * (size_t)(3 * W));
    if (!buf) {
        p->failed = 1;
        return NULL;
    }
#if HAVE_X86
    if (p->isa == 2)
        post_avx512(p, buf);
    else if (p->isa == 1)
        post_avx2(p, buf);
    else
#endif
        post_base(p, buf);
    free(buf);
    return NULL;
}

static PyObject *py_post(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o_ph, *o_cr, *o_cb, *o_out;
    double alpha, beta;
    int s, threads;
    if (!PyArg_ParseTuple(args, "OddOOiOi", &o_ph, &alpha, &beta, &o_cr, &o_cb, &s, &o_out,
                          &threads))
        return NULL;
    SpBuf b[4];
    memset(b, 0, sizeof b);
    PyObject *result = NULL;
    int64_t *x0 = NULL, *x1 = NULL;
    float *fx = NULL;
    if (sp_get(o_ph, &b[0], 2, "f", 0, 0, "phases") ||
        sp_get(o_cr, &b[1], 2, "B", 0, 0, "cr") ||
        sp_get(o_cb, &b[2], 2, "B", 0, 0, "cb") || sp_get(o_out, &b[3], 3, "B", 1, 0, "out"))
        goto done;
    int64_t h = SHAPE(b[1], 0), w = SHAPE(b[1], 1);
    if (s < 1 || s > 16 || h < 1 || w < 1) {
        PyErr_Format(PyExc_ValueError, "post: bad size %lld x %lld or scale %d", (long long)h,
                     (long long)w, s);
        goto done;
    }
    if (check_plane(&b[1], h, w, 1, "cr") || check_plane(&b[2], h, w, 1, "cb") ||
        check_rgb(&b[3], (int64_t)s * h, (int64_t)s * w, "out"))
        goto done;
    if (STRIDE(b[1], 0) != STRIDE(b[2], 0)) {
        PyErr_SetString(PyExc_ValueError, "cr and cb must have the same row stride");
        goto done;
    }
    if (SHAPE(b[0], 0) != h * w || SHAPE(b[0], 1) != (int64_t)s * s) {
        PyErr_Format(PyExc_ValueError, "phases: expected (%lld, %d), got (%lld, %lld)",
                     (long long)(h * w), s * s, (long long)SHAPE(b[0], 0),
                     (long long)SHAPE(b[0], 1));
        goto done;
    }
    {
        const int64_t W = (int64_t)s * w, H = (int64_t)s * h;
        x0 = (int64_t *)malloc(sizeof(int64_t) * (size_t)W);
        x1 = (int64_t *)malloc(sizeof(int64_t) * (size_t)W);
        fx = (float *)malloc(sizeof(float) * (size_t)W);
        if (!x0 || !x1 || !fx) {
            PyErr_NoMemory();
            goto done;
        }
        for (int64_t X = 0; X < W; X++) linear_tap(X, s, w, &x0[X], &x1[X], &fx[X]);
        Post work[SP_MAX_THREADS];
        const int isa = use_isa();
        int n = sp_threads_for(threads, H * W, 1 << 15);
        if (n > H) n = (int)H;
        for (int k = 0; k < n; k++) {
            work[k] = (Post){(const char *)b[0].view.buf,
                             STRIDE(b[0], 0),
                             STRIDE(b[0], 1),
                             (float)alpha,
                             (float)beta,
                             (const uint8_t *)b[1].view.buf,
                             (const uint8_t *)b[2].view.buf,
                             STRIDE(b[1], 0),
                             h,
                             w,
                             s,
                             (char *)b[3].view.buf,
                             STRIDE(b[3], 0),
                             x0,
                             x1,
                             fx,
                             H * k / n,
                             H * (k + 1) / n,
                             0,
                             isa};
        }
        int failed = 0;
        Py_BEGIN_ALLOW_THREADS
        sp_parallel_for(post_rows, work, sizeof(Post), n);
        Py_END_ALLOW_THREADS
        for (int k = 0; k < n; k++) failed |= work[k].failed;
        if (failed) {
            PyErr_NoMemory();
            goto done;
        }
    }
    result = Py_None;
    Py_INCREF(result);
done:
    free(x0);
    free(x1);
    free(fx);
    sp_release(b, 4);
    return result;
}

static PyMethodDef methods[] = {
    {"pre", py_pre, METH_VARARGS,
     "pre(rgb, y, cr, cb, threads)\n\n"
     "uint8 RGB (h, w, 3) -> OpenCV's integer YCrCb: Y as float32 level/255 into y (h, w),\n"
     "Cr and Cb levels into the uint8 planes cr, cb (h, w). Buffers are checked."},
    {"post", py_post, METH_VARARGS,
     "post(phases, alpha, beta, cr, cb, s, out, threads)\n\n"
     "Phases (h.w, s.s) float32 (Y = alpha.phase + beta) and chroma levels (h, w) -> RGB\n"
     "(s.h, s.w, 3) uint8 with OpenCV dnn_superres's rounding, bilinear chroma and integer\n"
     "colour conversion. Buffers are checked."},
    SP_ISA_METHODS,
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_opencv_levels",
    "OpenCV dnn_superres's uint8 steps, fused (see subpixel/_csrc/opencv_levels.c).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__opencv_levels(void) { return PyModule_Create(&module); }

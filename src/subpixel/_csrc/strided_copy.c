/* Blocked strided copy: the data movement of every periodic shuffle, in one pass.
 *
 * subpixel._strided_copy.copy(dst, src, threads) copies the buffer `src` (a numpy array or
 * memoryview: any strides, in bytes) into the writable buffer `dst` (same shape and item
 * size, its own strides); both are checked (buffers.h), a mismatch raises ValueError. A shuffle is a reshape -> permute -> reshape, so its copy has a
 * destination that is contiguous and a source whose innermost stride is usually not 1.
 * PyTorch's generic copy loops in destination order with the innermost destination
 * dimension as its inner loop; when that dimension is a factor r (2, 3, 4 elements) or a
 * short channel run, most of the time goes into loop overhead and half-used cache lines.
 *
 * Here the two dimensions that matter are found after merging dimensions that are
 * contiguous in both arrays: I, the destination's innermost, and T, the source's innermost.
 * When they are the same dimension, rows are copied with memcpy; otherwise each step of the
 * outer loops copies an I x T tile (a transpose), with the inner loops specialised for the
 * small sizes a shuffle produces, so that reads run along T and writes along I. Outer
 * dimensions are walked with an odometer and shared out between threads (pthreads; the
 * GIL is released).
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "buffers.h"
#include "parallel.h"

#if defined(__linux__) && !defined(MADV_POPULATE_WRITE)
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

#define MAX_DIMS 32
#define MAX_THREADS SP_MAX_THREADS

typedef struct {
    uint64_t lo, hi;
} u128;

typedef struct {
    int ndim;                 /* outer dimensions (walked by the odometer) */
    int64_t shape[MAX_DIMS];
    int64_t dst_st[MAX_DIMS]; /* bytes */
    int64_t src_st[MAX_DIMS]; /* bytes */
    int64_t n_k, dst_k, src_k; /* K: the innermost outer dimension, looped inside a step */
    int mode;                 /* 0: rows (I == T), 1: tiles (I != T) */
    int64_t n_i, dst_i, src_i; /* inner dimension I (strides in bytes) */
    int64_t n_t, dst_t, src_t; /* dimension T (tiles only) */
    int64_t k_chunk, n_kchunks; /* K, and T (tiles) or I (rows), are cut into chunks */
    int64_t t_chunk, n_tchunks; /* when the outer dimensions give too few steps to share */
    int64_t itemsize;
    char *dst;
    const char *src;
    char *dense_dst;    /* when dst is one dense block: its start and size in bytes */
    int64_t dense_bytes;
    int threads;
    int huge_pages;
    int aligned; /* addresses and strides are multiples of the item's alignment */
} Plan;

typedef struct {
    const Plan *plan;
    int index;          /* thread number */
    int64_t begin, end; /* work items: (outer index, K chunk, T chunk), row-major */
} Work;

/* Fresh output memory (a new tensor) is not mapped yet: writing it takes a page fault per
 * 4 KiB page, and faults interleaved with the copy cost more than the copy itself (64 MiB:
 * about 16 ms of faults against 4-6 ms of copying on a 2-core VM). So, before copying, the
 * threads map their share of a large dense output in one go: madvise(MADV_HUGEPAGE) on its
 * whole 2 MiB pages (transparent huge pages: 512 times fewer faults; a no-op where THP is
 * off), then madvise(MADV_POPULATE_WRITE). Both keep the memory's contents and fail
 * harmlessly on kernels without them; SUBPIXEL_NO_HUGEPAGES=1 skips the first. */
#define POPULATE_MIN_BYTES ((int64_t)4 << 20)

static void *populate_share(void *arg) {
    const Work *w = (const Work *)arg;
    const Plan *p = w->plan;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), huge = (uintptr_t)2 << 20;
    uintptr_t start = (uintptr_t)p->dense_dst + (uintptr_t)(p->dense_bytes * w->index / p->threads);
    uintptr_t end =
        (uintptr_t)p->dense_dst + (uintptr_t)(p->dense_bytes * (w->index + 1) / p->threads);
    start = (start + page - 1) & ~(page - 1);
    end &= ~(page - 1);
    if (end <= start) return NULL;
    if (p->huge_pages) {
        uintptr_t hs = (start + huge - 1) & ~(huge - 1), he = end & ~(huge - 1);
#ifdef MADV_HUGEPAGE
        if (he > hs) madvise((void *)hs, he - hs, MADV_HUGEPAGE);
#else
        (void)hs;
        (void)he;
#endif
    }
#ifdef MADV_POPULATE_WRITE /* elsewhere (macOS, BSD) the copy faults the pages in as usual */
    madvise((void *)start, end - start, MADV_POPULATE_WRITE);
#endif
    return NULL;
}

/* ---- tiles: dst[t * dT + i] = src[i * sI + t], strides in elements ---------------------- */

#define TILE_FUNCS(NAME, TYPE)                                                                 \
    /* nI a compile-time constant: nI streams of src, interleaved into dst */                  \
    static inline __attribute__((always_inline)) void tile_nI_##NAME(                          \
        TYPE *restrict d, const TYPE *restrict s, const int64_t nI, int64_t nT, int64_t dT,    \
        int64_t sI) {                                                                          \
        if (dT == nI) { /* dst block dense: constant-stride stores, vectorised */             \
            for (int64_t t = 0; t < nT; t++)                                                   \
                for (int64_t i = 0; i < nI; i++) d[t * nI + i] = s[i * sI + t];                \
            return;                                                                            \
        }                                                                                      \
        for (int64_t t = 0; t < nT; t++)                                                       \
            for (int64_t i = 0; i < nI; i++) d[t * dT + i] = s[i * sI + t];                    \
    }                                                                                          \
    /* nT a compile-time constant: src runs of nT spread over nT dst streams */                \
    static inline __attribute__((always_inline)) void tile_nT_##NAME(                          \
        TYPE *restrict d, const TYPE *restrict s, int64_t nI, const int64_t nT, int64_t dT,    \
        int64_t sI) {                                                                          \
        if (sI == nT) { /* src block dense: constant-stride loads, vectorised */              \
            for (int64_t t = 0; t < nT; t++)                                                   \
                for (int64_t i = 0; i < nI; i++) d[t * dT + i] = s[i * nT + t];                \
            return;                                                                            \
        }                                                                                      \
        for (int64_t i = 0; i < nI; i++)                                                       \
            for (int64_t t = 0; t < nT; t++) d[t * dT + i] = s[i * sI + t];                    \
    }                                                                                          \
    static void tile_blocked_##NAME(TYPE *restrict d, const TYPE *restrict s, int64_t nI,      \
                                    int64_t nT, int64_t dT, int64_t sI) {                      \
        enum { B = 16 };                                                                       \
        for (int64_t t0 = 0; t0 < nT; t0 += B) {                                               \
            const int64_t bt = nT - t0 < B ? nT - t0 : B;                                      \
            for (int64_t i0 = 0; i0 < nI; i0 += B) {                                           \
                const int64_t bi = nI - i0 < B ? nI - i0 : B;                                  \
                TYPE *dd = d + t0 * dT + i0;                                                   \
                const TYPE *ss = s + i0 * sI + t0;                                             \
                if (bi == B && bt == B)                                                        \
                    for (int64_t t = 0; t < B; t++)                                            \
                        for (int64_t i = 0; i < B; i++) dd[t * dT + i] = ss[i * sI + t];       \
                else                                                                           \
                    for (int64_t t = 0; t < bt; t++)                                           \
                        for (int64_t i = 0; i < bi; i++) dd[t * dT + i] = ss[i * sI + t];      \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    /* nK tiles, dK/sK bytes apart: the loop over K is inside the specialised code. */     \
    static void tile_##NAME(char *dk, const char *sk, int64_t nI, int64_t nT, int64_t dT,      \
                            int64_t sI, int64_t nK, int64_t dK, int64_t sK) {                  \
        /* The loop over the longer of the two runs at run time; the other is unrolled. */   \
        if (nT <= nI || nI > 8) {                                                              \
            switch (nT) {                                                                      \
            case 1: K_LOOP(TYPE, tile_nT_##NAME(d, s, nI, 1, dT, sI));                         \
            case 2: K_LOOP(TYPE, tile_nT_##NAME(d, s, nI, 2, dT, sI));                         \
            case 3: K_LOOP(TYPE, tile_nT_##NAME(d, s, nI, 3, dT, sI));                         \
            case 4: K_LOOP(TYPE, tile_nT_##NAME(d, s, nI, 4, dT, sI));                         \
            case 8: K_LOOP(TYPE, tile_nT_##NAME(d, s, nI, 8, dT, sI));                         \
            default: break;                                                                    \
            }                                                                                  \
        }                                                                                      \
        switch (nI) {                                                                          \
        case 1: K_LOOP(TYPE, tile_nI_##NAME(d, s, 1, nT, dT, sI));                             \
        case 2: K_LOOP(TYPE, tile_nI_##NAME(d, s, 2, nT, dT, sI));                             \
        case 3: K_LOOP(TYPE, tile_nI_##NAME(d, s, 3, nT, dT, sI));                             \
        case 4: K_LOOP(TYPE, tile_nI_##NAME(d, s, 4, nT, dT, sI));                             \
        case 6: K_LOOP(TYPE, tile_nI_##NAME(d, s, 6, nT, dT, sI));                             \
        case 8: K_LOOP(TYPE, tile_nI_##NAME(d, s, 8, nT, dT, sI));                             \
        default: break;                                                                        \
        }                                                                                      \
        K_LOOP(TYPE, tile_blocked_##NAME(d, s, nI, nT, dT, sI));                               \
    }

#define K_LOOP(TYPE, CALL)                                                                     \
    for (int64_t k = 0; k < nK; k++) {                                                         \
        TYPE *d = (TYPE *)(dk + k * dK);                                                       \
        const TYPE *s = (const TYPE *)(sk + k * sK);                                           \
        CALL;                                                                                  \
    }                                                                                          \
    return

TILE_FUNCS(u8, uint8_t)
TILE_FUNCS(u16, uint16_t)
TILE_FUNCS(u32, uint32_t)
TILE_FUNCS(u64, uint64_t)
TILE_FUNCS(u128, u128)

typedef void (*tile_fn)(char *, const char *, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                        int64_t);

static tile_fn tile_for(int64_t itemsize) {
    switch (itemsize) {
    case 1: return tile_u8;
    case 2: return tile_u16;
    case 4: return tile_u32;
    case 8: return tile_u64;
    case 16: return tile_u128;
    default: return NULL;
    }
}

/* Any strides (bytes), any item size: the fallback of the tile and row loops. */
static void generic_2d(char *d, const char *s, int64_t n_outer, int64_t d_o, int64_t s_o,
                       int64_t n_inner, int64_t d_i, int64_t s_i, int64_t itemsize) {
    for (int64_t o = 0; o < n_outer; o++)
        for (int64_t i = 0; i < n_inner; i++)
            memcpy(d + o * d_o + i * d_i, s + o * s_o + i * s_i, (size_t)itemsize);
}

static void run_step(const Plan *p, char *d, const char *s, int64_t kc, int64_t tc) {
    const int64_t k0 = kc * p->k_chunk;
    const int64_t nk = p->n_k - k0 < p->k_chunk ? p->n_k - k0 : p->k_chunk;
    const int64_t t0 = tc * p->t_chunk;
    d += k0 * p->dst_k;
    s += k0 * p->src_k;
    if (p->mode == 0) {
        const int64_t ni = p->n_i - t0 < p->t_chunk ? p->n_i - t0 : p->t_chunk;
        d += t0 * p->dst_i;
        s += t0 * p->src_i;
        const int dense = p->dst_i == p->itemsize && p->src_i == p->itemsize;
        for (int64_t k = 0; k < nk; k++, d += p->dst_k, s += p->src_k) {
            if (dense)
                memcpy(d, s, (size_t)(ni * p->itemsize));
            else
                generic_2d(d, s, 1, 0, 0, ni, p->dst_i, p->src_i, p->itemsize);
        }
        return;
    }
    const int64_t nt = p->n_t - t0 < p->t_chunk ? p->n_t - t0 : p->t_chunk;
    d += t0 * p->dst_t;
    s += t0 * p->src_t;
    tile_fn f = p->aligned ? tile_for(p->itemsize) : NULL;
    if (f && p->dst_i == p->itemsize && p->src_t == p->itemsize) {
        f(d, s, p->n_i, nt, p->dst_t / p->itemsize, p->src_i / p->itemsize, nk, p->dst_k,
          p->src_k);
        return;
    }
    for (int64_t k = 0; k < nk; k++, d += p->dst_k, s += p->src_k)
        generic_2d(d, s, nt, p->dst_t, p->src_t, p->n_i, p->dst_i, p->src_i, p->itemsize);
}

static void *run_work(void *arg) {
    const Work *w = (const Work *)arg;
    const Plan *p = w->plan;
    if (w->begin >= w->end) return NULL;
    const int64_t per_outer = p->n_kchunks * p->n_tchunks;
    int64_t idx[MAX_DIMS];
    int64_t outer = w->begin / per_outer, sub = w->begin % per_outer;
    int64_t rem = outer;
    char *d = p->dst;
    const char *s = p->src;
    for (int k = p->ndim - 1; k >= 0; k--) {
        idx[k] = rem % p->shape[k];
        rem /= p->shape[k];
        d += idx[k] * p->dst_st[k];
        s += idx[k] * p->src_st[k];
    }
    for (int64_t item = w->begin; item < w->end; item++) {
        run_step(p, d, s, sub / p->n_tchunks, sub % p->n_tchunks);
        if (++sub < per_outer) continue;
        sub = 0;
        for (int k = p->ndim - 1; k >= 0; k--) { /* odometer */
            d += p->dst_st[k];
            s += p->src_st[k];
            if (++idx[k] < p->shape[k]) break;
            d -= idx[k] * p->dst_st[k];
            s -= idx[k] * p->src_st[k];
            idx[k] = 0;
        }
    }
    return NULL;
}

/* Length in bytes of the contiguous streams in which loops over dims[0..n) (outermost first)
 * around a tile of `run` contiguous bytes walk an array with byte strides `st`. A loop that
 * continues the stream lengthens it; a short loop elsewhere interleaves a few streams (at
 * most 16 in all); any other loop ends the stream. */
static int64_t stream_run(const int *dims, int n, const int64_t *sh, const int64_t *st,
                          int64_t run) {
    int64_t streams = 1;
    for (int q = n - 1; q >= 0; q--) {
        const int k = dims[q];
        if (llabs(st[k]) == run)
            run *= sh[k];
        else if (sh[k] <= 8 && streams * sh[k] <= 16)
            streams *= sh[k];
        else
            break;
    }
    return run;
}

/* Merge, order and classify the dimensions. Returns -1 for an empty copy. */
static int make_plan(Plan *p, int ndim, const int64_t *shape, const int64_t *dst_st,
                     const int64_t *src_st, int64_t itemsize) {
    int64_t sh[MAX_DIMS], ds[MAX_DIMS], ss[MAX_DIMS];
    int n = 0;
    for (int k = 0; k < ndim; k++) {
        if (shape[k] == 0) return -1;
        if (shape[k] == 1) continue;
        sh[n] = shape[k];
        ds[n] = dst_st[k];
        ss[n] = src_st[k];
        n++;
    }
    /* Destination order: largest |stride| first (insertion sort; n is small). */
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && llabs(ds[b]) > llabs(ds[b - 1]); b--) {
            int64_t t;
            t = sh[b]; sh[b] = sh[b - 1]; sh[b - 1] = t;
            t = ds[b]; ds[b] = ds[b - 1]; ds[b - 1] = t;
            t = ss[b]; ss[b] = ss[b - 1]; ss[b - 1] = t;
        }
    /* Merge neighbours that are contiguous in both arrays. */
    int m = 0;
    for (int k = 0; k < n; k++) {
        if (m > 0 && ds[m - 1] == ds[k] * sh[k] && ss[m - 1] == ss[k] * sh[k]) {
            sh[m - 1] *= sh[k];
            ds[m - 1] = ds[k];
            ss[m - 1] = ss[k];
        } else {
            sh[m] = sh[k]; ds[m] = ds[k]; ss[m] = ss[k];
            m++;
        }
    }
    if (m == 0) { /* a single element */
        sh[0] = 1; ds[0] = itemsize; ss[0] = itemsize; m = 1;
    }
    p->itemsize = itemsize;
    const int inner = m - 1;
    int t_dim = inner;
    for (int k = 0; k < m; k++)
        if (llabs(ss[k]) < llabs(ss[t_dim])) t_dim = k;
    p->n_i = sh[inner]; p->dst_i = ds[inner]; p->src_i = ss[inner];
    p->mode = t_dim == inner ? 0 : 1;
    p->n_t = 1; p->dst_t = 0; p->src_t = 0;
    if (p->mode == 1) {
        p->n_t = sh[t_dim]; p->dst_t = ds[t_dim]; p->src_t = ss[t_dim];
    }
    /* The outer dimensions, outermost first: in the destination's order (writes run
     * sequentially, reads come from several streams), or in the source's (the other way
     * round), whichever leaves the other array with the longer contiguous streams. A shuffle
     * reads ∏r channel planes into one interleaved output (destination order); its inverse
     * is the mirror image (source order). */
    int outer[MAX_DIMS], n_outer_dims = 0;
    for (int k = 0; k < inner; k++)
        if (!(p->mode == 1 && k == t_dim)) outer[n_outer_dims++] = k;
    int by_src[MAX_DIMS];
    memcpy(by_src, outer, sizeof(int) * (size_t)n_outer_dims);
    for (int a = 1; a < n_outer_dims; a++) /* stable: equal strides keep destination order */
        for (int b = a; b > 0 && llabs(ss[by_src[b]]) > llabs(ss[by_src[b - 1]]); b--) {
            int t = by_src[b]; by_src[b] = by_src[b - 1]; by_src[b - 1] = t;
        }
    /* Tile extents: contiguous bytes of one I x T tile in each array. */
    int64_t src_run = p->mode == 1 ? sh[t_dim] * llabs(ss[t_dim]) : sh[inner] * llabs(ss[inner]);
    if (p->mode == 1 && llabs(ss[inner]) == src_run) src_run *= sh[inner];
    int64_t dst_run = sh[inner] * llabs(ds[inner]);
    if (p->mode == 1 && llabs(ds[t_dim]) == dst_run) dst_run *= sh[t_dim];
    if (p->mode == 0) src_run = dst_run = sh[inner] * itemsize;
    const int64_t src_stream = stream_run(outer, n_outer_dims, sh, ss, src_run);
    const int64_t dst_stream = stream_run(by_src, n_outer_dims, sh, ds, dst_run);
    const int *order = dst_stream > src_stream ? by_src : outer;
    p->ndim = 0;
    for (int q = 0; q < n_outer_dims; q++) {
        const int k = order[q];
        p->shape[p->ndim] = sh[k];
        p->dst_st[p->ndim] = ds[k];
        p->src_st[p->ndim] = ss[k];
        p->ndim++;
    }
    p->n_k = 1; p->dst_k = 0; p->src_k = 0;
    if (p->ndim > 0) {
        p->ndim--;
        p->n_k = p->shape[p->ndim];
        p->dst_k = p->dst_st[p->ndim];
        p->src_k = p->src_st[p->ndim];
    }
    p->k_chunk = p->n_k;
    p->n_kchunks = 1;
    p->t_chunk = p->mode == 1 ? p->n_t : p->n_i;
    p->n_tchunks = 1;
    return 0;
}

static PyObject *py_copy(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o_dst, *o_src;
    int threads;
    if (!PyArg_ParseTuple(args, "OOi", &o_dst, &o_src, &threads)) return NULL;
    SpBuf b[2];
    memset(b, 0, sizeof b);
    /* any item type (compared by size: the bytes are moved, not interpreted), any strides */
    if (sp_get(o_dst, &b[0], -MAX_DIMS, NULL, 1, 1, "dst") ||
        sp_get(o_src, &b[1], -MAX_DIMS, NULL, 0, 1, "src")) {
        sp_release(b, 2);
        return NULL;
    }
    const int ndim = b[1].view.ndim;
    const long long itemsize = b[1].view.itemsize;
    int64_t shape[MAX_DIMS], dst_st[MAX_DIMS], src_st[MAX_DIMS];
    for (int k = 0; k < ndim; k++) shape[k] = SP_SHAPE(b[1], k);
    if (b[0].view.ndim != ndim || b[0].view.itemsize != itemsize || itemsize < 1) {
        PyErr_Format(PyExc_ValueError,
                     "copy: dst has %d dimensions of %zd-byte items, src %d of %lld-byte items",
                     b[0].view.ndim, b[0].view.itemsize, ndim, itemsize);
        sp_release(b, 2);
        return NULL;
    }
    if (sp_shape(&b[0], shape, "dst") || sp_apart(&b[0], "dst")) {
        sp_release(b, 2);
        return NULL;
    }
    for (int k = 0; k < ndim; k++) {
        dst_st[k] = SP_STRIDE(b[0], k);
        src_st[k] = SP_STRIDE(b[1], k);
    }
    const uintptr_t dst_ptr = (uintptr_t)b[0].view.buf, src_ptr = (uintptr_t)b[1].view.buf;
    Plan p;
    if (make_plan(&p, ndim, shape, dst_st, src_st, itemsize) < 0) { /* nothing to copy */
        sp_release(b, 2);
        Py_RETURN_NONE;
    }
    p.dst = (char *)(uintptr_t)dst_ptr;
    p.src = (const char *)(uintptr_t)src_ptr;
    {
        const int64_t align = itemsize >= 8 ? 8 : itemsize; /* u128 is two uint64_t */
        int64_t bits = (int64_t)(dst_ptr | src_ptr);
        for (int k = 0; k < ndim; k++) bits |= dst_st[k] | src_st[k];
        p.aligned = (itemsize & (itemsize - 1)) == 0 && bits % align == 0;
    }

    int64_t n_outer = 1;
    for (int k = 0; k < p.ndim; k++) n_outer *= p.shape[k];
    const int64_t total = n_outer * p.n_k * p.n_i * p.n_t;
    threads = sp_threads_for(threads, (long long)(total * itemsize), 1 << 18); /* 256 KiB each */
    /* Enough steps for the threads to share evenly: cut K, then T (or the rows), if needed. */
    const int64_t want = 8 * (int64_t)threads;
    if (threads > 1 && n_outer < want && p.n_k > 1) {
        int64_t parts = (want + n_outer - 1) / n_outer;
        p.k_chunk = (p.n_k + parts - 1) / parts;
        p.n_kchunks = (p.n_k + p.k_chunk - 1) / p.k_chunk;
    }
    const int64_t n_split = p.mode == 1 ? p.n_t : p.n_i;
    const int64_t steps = n_outer * p.n_kchunks;
    if (threads > 1 && steps < want && n_split >= 64) {
        int64_t parts = (want + steps - 1) / steps;
        p.t_chunk = (n_split + parts - 1) / parts;
        if (p.t_chunk < 16) p.t_chunk = 16;
        p.n_tchunks = (n_split + p.t_chunk - 1) / p.t_chunk;
    }
    int64_t items = steps * p.n_tchunks;
    if (threads > items) threads = (int)items;
    p.threads = threads;
    p.huge_pages = 0;
    p.dense_dst = NULL;
    p.dense_bytes = 0;
    { /* Is dst one dense block (every byte of [start, start + numel * itemsize) an element)? */
        int64_t numel = 1, lo = 0, hi = 0;
        for (int k = 0; k < ndim; k++) {
            numel *= shape[k];
            int64_t span = (shape[k] - 1) * dst_st[k];
            if (span < 0) lo += span; else hi += span;
        }
        if (hi - lo + itemsize == numel * itemsize) {
            p.dense_dst = p.dst + lo;
            p.dense_bytes = numel * itemsize;
        }
    }

    Work work[MAX_THREADS];
    Py_BEGIN_ALLOW_THREADS
    for (int k = 0; k < threads; k++) {
        work[k].plan = &p;
        work[k].index = k;
        work[k].begin = items * k / threads;
        work[k].end = items * (k + 1) / threads;
    }
    if (p.dense_dst && p.dense_bytes >= POPULATE_MIN_BYTES) {
        const char *no_huge = getenv("SUBPIXEL_NO_HUGEPAGES");
        p.huge_pages = !(no_huge && no_huge[0] && strcmp(no_huge, "0") != 0);
        sp_parallel_for(populate_share, work, sizeof(Work), threads);
    }
    sp_parallel_for(run_work, work, sizeof(Work), threads);
    Py_END_ALLOW_THREADS
    sp_release(b, 2);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"copy", py_copy, METH_VARARGS,
     "copy(dst, src, threads)\n\n"
     "Copy the buffer src into the writable buffer dst: the same shape (at most 32\n"
     "dimensions) and item size, any strides (dst's elements apart). Buffers are checked\n"
     "(ValueError)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_strided_copy",
    "Blocked strided copy used by subpixel's shuffles (see subpixel/_csrc/strided_copy.c).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__strided_copy(void) { return PyModule_Create(&module); }

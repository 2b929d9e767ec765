/* Shared by subpixel's compiled kernels: their arrays arrive as Python buffers (numpy arrays,
 * memoryviews; subpixel's wrappers pass tensor.numpy() views) and are checked here against
 * what the kernel will read and write. Sizes, formats and strides come from the buffer's
 * owner, so a kernel that indexes within the checked shape stays within the memory; a view
 * of the wrong shape, dtype or layout raises ValueError instead of being read out of
 * bounds. Nothing trusts an address or a stride passed as a number.
 */
#ifndef SUBPIXEL_BUFFERS_H
#define SUBPIXEL_BUFFERS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    Py_buffer view;
    int held;
} SpBuf;

#define SP_SHAPE(b, d) ((int64_t)(b).view.shape[d])
#define SP_STRIDE(b, d) ((int64_t)(b).view.strides[d])

/* The buffer's struct-module format without its byte-order prefix ("B" when none given). */
static inline const char *sp_format(const Py_buffer *v) {
    const char *f = v->format ? v->format : "B";
    if (f[0] == '<' || f[0] == '=' || f[0] == '@') f++;
    return f;
}

/* Get obj's buffer into b: `ndim` dimensions (ndim < 0: up to -ndim), its format one of the
 * single characters in `formats` (NULL: any format), writable if asked. Strides of the
 * dimensions longer than one must not be negative unless `negative` (a kernel that walks
 * from the first element forwards would otherwise leave the memory). */
static inline int sp_get(PyObject *obj, SpBuf *b, int ndim, const char *formats, int writable,
                         int negative, const char *what) {
    int flags = PyBUF_STRIDES | (formats ? PyBUF_FORMAT : 0) | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &b->view, flags) < 0) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        PyErr_Format(PyExc_ValueError, "%s: expected a%s buffer (numpy array), got %.80s (%S)",
                     what, writable ? " writable" : "", Py_TYPE(obj)->tp_name,
                     value ? value : Py_None);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return -1;
    }
    b->held = 1;
    const int nd = b->view.ndim;
    if ((ndim >= 0 && nd != ndim) || (ndim < 0 && nd > -ndim)) {
        PyErr_Format(PyExc_ValueError, "%s: expected %s%d dimensions, got %d", what,
                     ndim < 0 ? "at most " : "", ndim < 0 ? -ndim : ndim, nd);
        return -1;
    }
    if (formats) {
        const char *f = sp_format(&b->view);
        if (f[0] == '\0' || f[1] != '\0' || !strchr(formats, f[0])) {
            PyErr_Format(PyExc_ValueError, "%s: expected items of format '%s', got '%s'", what,
                         formats, f);
            return -1;
        }
    }
    for (int d = 0; d < nd; d++) {
        if (!negative && b->view.strides[d] < 0 && b->view.shape[d] > 1) {
            PyErr_Format(PyExc_ValueError, "%s: stride %zd of dimension %d is negative", what,
                         b->view.strides[d], d);
            return -1;
        }
    }
    return 0;
}

static inline void sp_release(SpBuf *b, int n) {
    for (int k = 0; k < n; k++)
        if (b[k].held) {
            PyBuffer_Release(&b[k].view);
            b[k].held = 0;
        }
}

/* ValueError unless b's shape is `shape` (entries < 0: any length). */
static inline int sp_shape(const SpBuf *b, const int64_t *shape, const char *what) {
    const int nd = b->view.ndim;
    int ok = 1;
    for (int d = 0; d < nd; d++) ok &= shape[d] < 0 || SP_SHAPE(*b, d) == shape[d];
    if (ok) return 0;
    char want[160] = "", got[160] = "";
    size_t nw = 0, ng = 0;
    for (int d = 0; d < nd && nw < 120 && ng < 120; d++) {
        const char *sep = d ? ", " : "";
        if (shape[d] < 0)
            nw += (size_t)snprintf(want + nw, sizeof want - nw, "%s_", sep);
        else
            nw += (size_t)snprintf(want + nw, sizeof want - nw, "%s%lld", sep,
                                   (long long)shape[d]);
        ng += (size_t)snprintf(got + ng, sizeof got - ng, "%s%lld", sep,
                               (long long)SP_SHAPE(*b, d));
    }
    PyErr_Format(PyExc_ValueError, "%s: expected shape (%s), got (%s)", what, want, got);
    return -1;
}

/* b's strides in items into `out`; ValueError where one (of a dimension longer than one) is
 * not a multiple of the item size (a dimension of length one gets 0 for such a stride). */
static inline int sp_item_strides(const SpBuf *b, int64_t *out, const char *what) {
    const int64_t item = b->view.itemsize;
    for (int d = 0; d < b->view.ndim; d++) {
        const int64_t st = SP_STRIDE(*b, d);
        if (SP_SHAPE(*b, d) <= 1) {
            out[d] = item > 0 && st % item == 0 ? st / item : 0;
        } else if (item < 1 || st % item) {
            PyErr_Format(PyExc_ValueError,
                         "%s: stride %lld bytes of dimension %d is not a multiple of the item "
                         "size %lld",
                         what, (long long)st, d, (long long)item);
            return -1;
        } else {
            out[d] = st / item;
        }
    }
    return 0;
}

/* ValueError unless dimension d of b is dense (stride one item) or of length one. */
static inline int sp_dense_dim(const SpBuf *b, int d, const char *what) {
    if (SP_SHAPE(*b, d) <= 1 || SP_STRIDE(*b, d) == b->view.itemsize) return 0;
    PyErr_Format(PyExc_ValueError, "%s: dimension %d must be contiguous (stride %lld bytes), got "
                 "stride %lld",
                 what, d, (long long)b->view.itemsize, (long long)SP_STRIDE(*b, d));
    return -1;
}

/* ValueError unless b is C-contiguous (optionally its start aligned to `align` bytes). */
static inline int sp_contiguous(const SpBuf *b, int64_t align, const char *what) {
    if (!PyBuffer_IsContiguous(&b->view, 'C')) {
        PyErr_Format(PyExc_ValueError, "%s: expected a contiguous array", what);
        return -1;
    }
    if (align > 1 && (uintptr_t)b->view.buf % (uintptr_t)align) {
        PyErr_Format(PyExc_ValueError, "%s: expected the data %lld-byte aligned", what,
                     (long long)align);
        return -1;
    }
    return 0;
}

/* ValueError where two elements of b could share memory (an output written by several
 * threads must not): each dimension, smaller stride first, must step past all that the
 * dimensions before it span. Layouts made by slicing and permuting a dense array pass. */
static inline int sp_apart(const SpBuf *b, const char *what) {
    int64_t st[64], n[64];
    int m = 0;
    for (int d = 0; d < b->view.ndim && m < 64; d++) {
        if (SP_SHAPE(*b, d) <= 1) continue;
        const int64_t s = SP_STRIDE(*b, d);
        st[m] = s < 0 ? -s : s;
        n[m] = SP_SHAPE(*b, d);
        for (int k = m; k > 0 && st[k - 1] > st[k]; k--) { /* insertion sort by stride */
            int64_t t = st[k];
            st[k] = st[k - 1];
            st[k - 1] = t;
            t = n[k];
            n[k] = n[k - 1];
            n[k - 1] = t;
        }
        m++;
    }
    int64_t reach = b->view.itemsize;
    for (int k = 0; k < m; k++) {
        if (st[k] < reach) {
            PyErr_Format(PyExc_ValueError, "%s: elements overlap in memory (strides %lld < %lld)",
                         what, (long long)st[k], (long long)reach);
            return -1;
        }
        reach += (n[k] - 1) * st[k];
    }
    return 0;
}

#endif

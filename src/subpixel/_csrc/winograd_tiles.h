/* The per-tile transforms of winograd.c for one vector width. winograd.c includes this file
 * once per width, after defining WT_SFX (suffix of the names defined here), WT_V (vector
 * type, 64-byte aligned buffers), WT_VU (the same, any alignment), WT_VI (int32 vector of
 * the same width) and WT_W (floats per vector): the AVX-512 copy works on 16 floats, the
 * AVX2 and portable copies on 8 (16 would need twice their registers). */
#define WT_CAT2(a, b) a##_##b
#define WT_CAT(a, b) WT_CAT2(a, b)
#define WT_FN(name) WT_CAT(name, WT_SFX)

/* t = B^T d for six vectors (in place). */
INLINE void WT_FN(bt6)(WT_V d[6]) {
    const WT_V d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3], d4 = d[4], d5 = d[5];
    const WT_V s = d3 + d4, p = d1 + d2, s2 = d4 - d3, q = d1 - d2;
    const WT_V e = d4 - d2, f = d3 - d1;
    d[0] = d4 - 5.0f * d2 + 4.0f * d0;
    d[1] = s - 4.0f * p;
    d[2] = s2 + 4.0f * q;
    d[3] = e + 2.0f * f;
    d[4] = e - 2.0f * f;
    d[5] = d5 - 5.0f * d3 + 4.0f * d1;
}

/* o = A^T m: four vectors from six. */
INLINE void WT_FN(at6)(const WT_V m[6], WT_V o[4]) {
    const WT_V a = m[1] + m[2], b = m[1] - m[2], c = m[3] + m[4], d = m[3] - m[4];
    o[0] = m[0] + a + c;
    o[1] = b + 2.0f * d;
    o[2] = a + 4.0f * c;
    o[3] = b + 8.0f * d + m[5];
}

/* Step 1 for one tile: patch rows rp[i] (NULL: zeros), first column x0 (may be -1 or reach
 * past w: those columns are zeros when `edge`), into V + t * cin (planes TB * cin apart;
 * cin == p->cin, a constant where the caller can make it one). */
INLINE void WT_FN(in_tile)(const Wino *p, const float *const rp[6], int64_t x0, float *V,
                           const int cin, const int edge) {
    const size_t vs = (size_t)TB * cin;
    for (int c0 = 0; c0 < cin; c0 += WT_W) {
        WT_V tmp[6][6];
#pragma GCC unroll 6
        for (int j = 0; j < 6; j++) { /* columns: B^T over the rows */
            const int64_t x = x0 + j;
            const int col_ok = !edge || (x >= 0 && x < p->w);
            WT_V col[6];
#pragma GCC unroll 6
            for (int i = 0; i < 6; i++)
                col[i] = (col_ok && (!edge || rp[i]))
                             ? (WT_V) * (const WT_VU *)(rp[i] + x * p->in_ps + c0)
                             : (WT_V){0};
            WT_FN(bt6)(col);
#pragma GCC unroll 6
            for (int i = 0; i < 6; i++) tmp[i][j] = col[i];
        }
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++) { /* rows: B^T over the columns */
            WT_FN(bt6)(tmp[i]);
#pragma GCC unroll 6
            for (int j = 0; j < 6; j++)
                *(WT_V *)(V + (size_t)(i * 6 + j) * vs + c0) = tmp[i][j];
        }
    }
}

/* Step 3 for tile t of the block: 4x4 outputs at row y0, column x0. */
INLINE void WT_FN(out_tile)(const Wino *p, const float *M, int t, int64_t y0, int64_t x0) {
    const int64_t rows_out = p->rows_in - 2;
    const int ny = (int)(rows_out - y0 < 4 ? rows_out - y0 : 4);
    const int nx = (int)(p->w - x0 < 4 ? p->w - x0 : 4);
    for (int n0 = 0; n0 < p->cout; n0 += WT_W) {
        const int nc = p->cout - n0 < WT_W ? p->cout - n0 : WT_W;
        WT_V s[6][4];
        for (int i = 0; i < 6; i++) { /* rows: A^T over the columns */
            WT_V m[6];
            for (int j = 0; j < 6; j++)
                m[j] = *(const WT_V *)(M + ((size_t)(i * 6 + j) * TB + t) * p->cpad + n0);
            WT_FN(at6)(m, s[i]);
        }
        const WT_V bias = *(const WT_V *)(p->bias + n0);
        for (int b = 0; b < 4; b++) { /* columns: A^T over the rows */
            WT_V m[6], o[4];
            for (int i = 0; i < 6; i++) m[i] = s[i][b];
            WT_FN(at6)(m, o);
            if (b >= nx) continue;
            for (int a = 0; a < ny; a++) {
                WT_V r = o[a] + bias;
                float *dst = p->out + (y0 + a) * p->out_rs + (x0 + b) * p->out_ps + n0;
                if (p->accumulate) {
                    if (nc == WT_W)
                        r += *(const WT_VU *)dst;
                    else
                        for (int l = 0; l < nc; l++) r[l] += dst[l];
                }
                if (p->relu) r = (WT_V)((WT_VI)(r > 0.0f) & (WT_VI)r);
                if (nc == WT_W)
                    *(WT_VU *)dst = r;
                else
                    for (int l = 0; l < nc; l++) dst[l] = r[l];
            }
        }
    }
}

#undef WT_FN
#undef WT_CAT
#undef WT_CAT2

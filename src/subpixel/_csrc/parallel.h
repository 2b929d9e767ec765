/* Shared by subpixel's compiled kernels: fan a job's shares out over threads. */
#ifndef SUBPIXEL_PARALLEL_H
#define SUBPIXEL_PARALLEL_H

#include <pthread.h>
#include <stddef.h>

#define SP_MAX_THREADS 64

/* fn(items + k * size) for every k < n, on n threads (the caller's thread included). A share
 * whose thread cannot be started is done by the caller afterwards. Call it with the GIL
 * released. */
static inline void sp_parallel_for(void *(*fn)(void *), void *items, size_t size, int n) {
    pthread_t tid[SP_MAX_THREADS];
    int started[SP_MAX_THREADS] = {0};
    char *base = (char *)items;
    if (n > SP_MAX_THREADS) n = SP_MAX_THREADS;
    for (int k = 1; k < n; k++)
        started[k] = pthread_create(&tid[k], NULL, fn, base + (size_t)k * size) == 0;
    if (n > 0) fn(base);
    for (int k = 1; k < n; k++) {
        if (started[k])
            pthread_join(tid[k], NULL);
        else
            fn(base + (size_t)k * size);
    }
}

#endif

/* Shared by subpixel's compiled kernels: fan a job's shares out over threads. */
#ifndef SUBPIXEL_PARALLEL_H
#define SUBPIXEL_PARALLEL_H

#include <pthread.h>
#include <stddef.h>

#define SP_MAX_THREADS 64

/* How many of `threads` to use for `work` units when a thread should get at least `grain`
 * of them (starting a thread costs tens of microseconds: on a many-core machine a small job
 * must not start one per core). At least 1, at most SP_MAX_THREADS. */
static inline int sp_threads_for(int threads, long long work, long long grain) {
    long long useful = grain > 0 ? work / grain : work;
    if (useful < threads) threads = (int)useful;
    if (threads > SP_MAX_THREADS) threads = SP_MAX_THREADS;
    return threads < 1 ? 1 : threads;
}

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

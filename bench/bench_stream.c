/*
 * bench_stream — an independent STREAM-style Copy (c[i] = a[i] over doubles),
 * the reference the profiler's memory bandwidth is checked against
 * (bench/profile_vs_reference.sh). Written as McCalpin's STREAM does it: two
 * arrays of doubles well over the last-level cache, a plain loop split into
 * one contiguous slice per thread (pthreads), first-touch by the thread that
 * uses the slice, 10 timed repetitions after one untimed; bandwidth counted
 * as STREAM counts Copy, 16 bytes per element (8 read + 8 written). Prints
 * the best (STREAM's figure) and the median per thread count.
 *   bench_stream [MiB per array (default 512)] [max threads (default: cores)]
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define NTIMES 10

typedef struct slice {
    double *a, *c;
    size_t from, to;
    pthread_barrier_t *go, *done;
    int reps;
} slice;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *worker(void *arg)
{
    slice *s = arg;
    for (size_t i = s->from; i < s->to; i++) { /* first touch */
        s->a[i] = 1.0;
        s->c[i] = 0.0;
    }
    for (int r = 0; r < s->reps; r++) {
        pthread_barrier_wait(s->go);
        double *restrict c = s->c;
        const double *restrict a = s->a;
        for (size_t i = s->from; i < s->to; i++)
            c[i] = a[i];
        pthread_barrier_wait(s->done);
    }
    return NULL;
}

static int cmp(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 512;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int maxt = argc > 2 ? atoi(argv[2]) : (int)(ncpu > 0 ? ncpu : 1);
    size_t n = (mib << 20) / sizeof(double);
    printf("STREAM-style Copy, %zu MiB per array, %d repetitions (best and median)\n", mib, NTIMES);
    for (int t = 1; t <= maxt; t++) {
        double *a = malloc(n * sizeof *a), *c = malloc(n * sizeof *c);
        if (!a || !c) {
            fprintf(stderr, "bench_stream: out of memory\n");
            free(a);
            free(c);
            return 1;
        }
        pthread_barrier_t go, done;
        pthread_barrier_init(&go, NULL, (unsigned)t + 1);
        pthread_barrier_init(&done, NULL, (unsigned)t + 1);
        pthread_t th[256];
        slice sl[256];
        for (int i = 0; i < t; i++) {
            sl[i] = (slice){a, c, n * (size_t)i / (size_t)t, n * (size_t)(i + 1) / (size_t)t, &go, &done,
                            NTIMES + 1};
            pthread_create(&th[i], NULL, worker, &sl[i]);
        }
        double times[NTIMES + 1];
        for (int r = 0; r <= NTIMES; r++) {
            double t0 = now_s();
            pthread_barrier_wait(&go);
            pthread_barrier_wait(&done);
            times[r] = now_s() - t0;
        }
        for (int i = 0; i < t; i++)
            pthread_join(th[i], NULL);
        qsort(times + 1, NTIMES, sizeof *times, cmp); /* the first is untimed (warm-up) */
        double bytes = 2.0 * sizeof(double) * (double)n;
        printf("threads %2d   best %8.2f GB/s   median %8.2f GB/s\n", t, bytes / times[1] / 1e9,
               bytes / (0.5 * (times[NTIMES / 2] + times[NTIMES / 2 + 1])) / 1e9);
        pthread_barrier_destroy(&go);
        pthread_barrier_destroy(&done);
        free(a);
        free(c);
    }
    return 0;
}

/* Measure sustained memory read bandwidth with all cores: each thread sums
 * its slice of a buffer much larger than the caches; best of several passes.
 * Prints GB/s (1e9 bytes per second) on stdout.
 * usage: membw [MiB] [threads]   (build: cc -O2 -march=native -pthread) */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct slice {
        const uint64_t *p;
        size_t n;
        uint64_t sum;
};

/* 64-byte vectors, lowered to the widest loads -march allows: build with
 * -march=native (bench/runtime/bench.sh does).  Narrower loads are bound by
 * the core's load ports, not by memory, on some CPUs: on an Intel Xeon with
 * AVX-512 (session 10) scalar 8-byte loads read 17-20 GB/s, 16-byte ones 23,
 * 64-byte ones 29, from the same 1 GiB with two threads. */
typedef uint64_t vec __attribute__((vector_size(64)));

static void *reader(void *arg) {
        struct slice *s = arg;
        const vec *p = (const vec *)s->p;
        size_t nv = s->n / 8;
        vec a = {0}, b = a, c = a, d = a;
        /* four independent chains keep several loads in flight */
        for (size_t i = 0; i + 4 <= nv; i += 4) {
                a += p[i];
                b += p[i + 1];
                c += p[i + 2];
                d += p[i + 3];
        }
        a += b + c + d;
        s->sum = a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
        return NULL;
}

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
        size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
        long nt = argc > 2 ? strtol(argv[2], NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
        size_t n, per;
        uint64_t *buf, total = 0;
        double best = 0;

        if (mib < 64 || mib > 65536 || nt < 1 || nt > 256) {
                fprintf(stderr, "usage: membw [MiB >= 64] [threads]\n");
                return 2;
        }
        n = mib * 1024 * 1024 / 8;
        buf = aligned_alloc(64, n * 8); /* n * 8 is a multiple of 64 */
        if (!buf) {
                fprintf(stderr, "membw: out of memory\n");
                return 1;
        }
        for (size_t i = 0; i < n; i++)
                buf[i] = i * 2654435761u;
        per = n / nt & ~(size_t)31; /* whole steps of four vectors, 64-byte aligned slices */
        for (int pass = 0; pass < 5; pass++) {
                pthread_t t[256];
                struct slice s[256];
                double t0 = now(), dt;
                for (long i = 0; i < nt; i++) {
                        s[i] = (struct slice){buf + i * per, per, 0};
                        pthread_create(&t[i], NULL, reader, &s[i]);
                }
                for (long i = 0; i < nt; i++) {
                        pthread_join(t[i], NULL);
                        total += s[i].sum;
                }
                dt = now() - t0;
                if (per * nt * 8 / dt / 1e9 > best)
                        best = per * nt * 8 / dt / 1e9;
        }
        printf("%.2f\n", best);
        fprintf(stderr, "membw: %zu MiB, %ld threads, checksum %llx\n", mib, nt, (unsigned long long)total);
        free(buf);
        return 0;
}

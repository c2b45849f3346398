/* Times allocator and mapping calls for the call-site benchmark (scripts/bench-callsites.sh).
 * Usage: alloc_loop malloc|mmap N   -> prints ns per malloc+free (or mmap+munmap) pair.
 * Waits for a line on stdin before timing, so a session can attach first. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    long n = atol(argv[2]);
    printf("ready\n");
    fflush(stdout);
    char line[16];
    if (!fgets(line, sizeof line, stdin)) return 1;
    void *volatile sink;
    double t0 = now();
    if (strcmp(argv[1], "malloc") == 0) {
        for (long i = 0; i < n; i++) {
            char *p = malloc(64 + (i & 63));
            p[0] = (char)i;
            sink = p;
            free(p);
        }
    } else {
        for (long i = 0; i < n; i++) {
            void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            sink = p;
            munmap(p, 4096);
        }
    }
    (void)sink;
    printf("%.1f\n", (now() - t0) / n);
    return 0;
}

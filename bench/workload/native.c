/*
 * Native (host) driver of the tsxen CPU benchmark workload.
 *
 * usage: workload-native [iterations] [repeats]
 * Runs workload_run() once to warm up, then `repeats` timed times, and prints
 * one line of JSON: checksum, iterations, repeats, and ns per run (min,
 * median, mean).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "workload.h"

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_ll(const void *a, const void *b) {
  long long x = *(const long long *)a;
  long long y = *(const long long *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  unsigned int iterations = WORKLOAD_ITERATIONS;
  int repeats = 20;
  if (argc > 1) iterations = (unsigned int)strtoul(argv[1], NULL, 0);
  if (argc > 2) repeats = atoi(argv[2]);
  if (repeats < 1 || repeats > 100000) {
    fprintf(stderr, "workload-native: repeats must be 1..100000\n");
    return 2;
  }
  long long *times = malloc(sizeof(long long) * (size_t)repeats);
  if (!times) return 2;

  unsigned int checksum = workload_run(iterations, WORKLOAD_SEED); /* warm-up */
  long long total = 0;
  for (int r = 0; r < repeats; r++) {
    long long t0 = now_ns();
    unsigned int c = workload_run(iterations, WORKLOAD_SEED);
    long long t1 = now_ns();
    if (c != checksum) {
      fprintf(stderr, "workload-native: checksum changed between runs: 0x%08x vs 0x%08x\n", c, checksum);
      return 1;
    }
    times[r] = t1 - t0;
    total += t1 - t0;
  }
  qsort(times, (size_t)repeats, sizeof(long long), cmp_ll);
  long long median = repeats % 2 ? times[repeats / 2] : (times[repeats / 2 - 1] + times[repeats / 2]) / 2;
  printf("{\"checksum\":%u,\"iterations\":%u,\"repeats\":%d,\"nsPerRunMin\":%lld,\"nsPerRunMedian\":%lld,"
         "\"nsPerRunMean\":%lld}\n",
         checksum, iterations, repeats, times[0], median, total / repeats);
  free(times);
  return 0;
}

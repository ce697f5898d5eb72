/*
 * Native (host) driver of the tsxen CPU benchmark workload.
 *
 * usage: workload-native [iterations] [repeats]
 * Runs workload_run() once to warm up, then `repeats` timed times, and prints
 * one line of JSON: checksum, iterations, repeats, ns of wall time per run
 * (min, median, mean) and ns of process CPU time per run (min, median), the
 * latter being what to compare on a loaded machine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "workload.h"

static long long clock_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
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
  long long *cpu_times = malloc(sizeof(long long) * (size_t)repeats);
  if (!times || !cpu_times) return 2;

  unsigned int checksum = workload_run(iterations, WORKLOAD_SEED); /* warm-up */
  long long total = 0;
  for (int r = 0; r < repeats; r++) {
    long long c0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    long long t0 = clock_ns(CLOCK_MONOTONIC);
    unsigned int c = workload_run(iterations, WORKLOAD_SEED);
    long long t1 = clock_ns(CLOCK_MONOTONIC);
    long long c1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    if (c != checksum) {
      fprintf(stderr, "workload-native: checksum changed between runs: 0x%08x vs 0x%08x\n", c, checksum);
      return 1;
    }
    times[r] = t1 - t0;
    cpu_times[r] = c1 - c0;
    total += t1 - t0;
  }
  qsort(times, (size_t)repeats, sizeof(long long), cmp_ll);
  qsort(cpu_times, (size_t)repeats, sizeof(long long), cmp_ll);
  long long median = repeats % 2 ? times[repeats / 2] : (times[repeats / 2 - 1] + times[repeats / 2]) / 2;
  long long cpu_median =
      repeats % 2 ? cpu_times[repeats / 2] : (cpu_times[repeats / 2 - 1] + cpu_times[repeats / 2]) / 2;
  printf("{\"checksum\":%u,\"iterations\":%u,\"repeats\":%d,\"nsPerRunMin\":%lld,\"nsPerRunMedian\":%lld,"
         "\"nsPerRunMean\":%lld,\"cpuNsPerRunMin\":%lld,\"cpuNsPerRunMedian\":%lld}\n",
         checksum, iterations, repeats, times[0], median, total / repeats, cpu_times[0], cpu_median);
  free(times);
  free(cpu_times);
  return 0;
}

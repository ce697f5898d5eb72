/*
 * ltest: a userland test of Linux's behaviour on tsxen (XenLinux 2.6.11 domU, BusyBox initrd).
 * Each check prints "PASS name" or "FAIL name: why"; the last line is
 * "LTEST DONE passed=N failed=M". Static, musl (a libc that still runs on 2.6.11):
 *
 *   i386-linux-musl-gcc -static -O2 -Wall -o ltest guests/linux/ltest.c
 *
 * Threads are made with raw clone/set_thread_area (not musl's pthreads) so that the TLS
 * descriptors, which XenLinux writes to the GDT with update_descriptor on every switch, are
 * the test's own. Built and run by test/real-guests.test.ts (see docs/real-guests.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int passed, failed;

static void result(const char *name, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#include <stdarg.h>
static void result(const char *name, int ok, const char *fmt, ...) {
  if (ok) {
    printf("PASS %s\n", name);
    passed++;
  } else {
    va_list ap;
    printf("FAIL %s: ", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    failed++;
  }
  fflush(stdout);
}

/* fork with stdout flushed, so a child does not print the parent's buffer again */
static pid_t xfork(void) {
  fflush(stdout);
  return fork();
}

static int wait_status(pid_t pid) {
  int st = -1;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return st;
}

static int exit_code(pid_t pid) {
  int st = wait_status(pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + st;
}

/* ---- fork, exec and wait ---- */
static void test_fork_exec(const char *self) {
  pid_t p = xfork();
  if (p == 0) _exit(42);
  int st = wait_status(p);
  result("fork-wait", p > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 42, "status %#x", st);

  p = xfork();
  if (p == 0) {
    execl(self, self, "child-exit", "37", (char *)0);
    _exit(99);
  }
  st = exit_code(p);
  result("exec-self", st == 37, "exit code %d", st);

  p = xfork();
  if (p == 0) {
    execl("/bin/sh", "sh", "-c", "exit 7", (char *)0);
    _exit(99);
  }
  st = exit_code(p);
  result("exec-sh", st == 7, "exit code %d", st);

  p = xfork();
  if (p == 0) {
    execl("/nonexistent", "x", (char *)0);
    _exit(errno == ENOENT ? 5 : 6);
  }
  st = exit_code(p);
  result("exec-enoent", st == 5, "exit code %d", st);

  enum { N = 16 };
  pid_t kids[N];
  for (int i = 0; i < N; i++) {
    kids[i] = xfork();
    if (kids[i] == 0) _exit(i + 1);
  }
  int seen = 0, bad = 0;
  for (int i = 0; i < N; i++) {
    int s;
    pid_t w = wait(&s);
    int k = -1;
    for (int j = 0; j < N; j++)
      if (kids[j] == w) k = j;
    if (k < 0 || !WIFEXITED(s) || WEXITSTATUS(s) != k + 1) bad++;
    else seen |= 1 << k;
  }
  result("wait-many", bad == 0 && seen == (1 << N) - 1 && wait(NULL) < 0 && errno == ECHILD,
         "bad %d seen %#x", bad, seen);
}

/* ---- copy-on-write ---- */
static void test_cow(void) {
  enum { SZ = 64 * 1024 };
  static unsigned char buf[SZ];
  for (int i = 0; i < SZ; i++) buf[i] = (unsigned char)(i * 7);
  int toc[2], top[2];
  if (pipe(toc) || pipe(top)) {
    result("cow", 0, "pipe: %s", strerror(errno));
    return;
  }
  pid_t p = xfork();
  if (p == 0) {
    char c;
    for (int i = 0; i < SZ; i += 4096) buf[i] = 0xAA; /* the child's own writes */
    (void)!write(top[1], "w", 1);
    (void)!read(toc[0], &c, 1); /* the parent has written its own */
    int bad = 0;
    for (int i = 0; i < SZ; i++) {
      unsigned char want = (i % 4096 == 0) ? 0xAA : (unsigned char)(i * 7);
      if (buf[i] != want) bad++;
    }
    _exit(bad ? 1 : 0);
  }
  char c;
  (void)!read(top[0], &c, 1); /* the child has written */
  int bad = 0;
  for (int i = 0; i < SZ; i++)
    if (buf[i] != (unsigned char)(i * 7)) bad++;
  for (int i = 1; i < SZ; i += 4096) buf[i] = 0x55;
  (void)!write(toc[1], "p", 1);
  int st = exit_code(p);
  result("cow-parent", bad == 0, "%d bytes changed by the child's writes", bad);
  result("cow-child", st == 0, "child saw the parent's writes or lost its own (%d)", st);
  close(toc[0]), close(toc[1]), close(top[0]), close(top[1]);
}

/* ---- signals ---- */
static volatile sig_atomic_t usr1, usr2, chld, segv;
static sigjmp_buf segv_jmp;
static void on_usr1(int s) { usr1++; (void)s; }
static void on_usr2(int s) { usr2++; (void)s; }
static void on_chld(int s) { chld++; (void)s; }
static void on_segv(int s) {
  segv++;
  (void)s;
  siglongjmp(segv_jmp, 1);
}

static void test_signals(void) {
  signal(SIGUSR1, on_usr1);
  signal(SIGUSR2, on_usr2);
  raise(SIGUSR1);
  kill(getpid(), SIGUSR1);
  result("signal-handler", usr1 == 2, "handler ran %d times", (int)usr1);

  sigset_t set, old, pend;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR2);
  sigprocmask(SIG_BLOCK, &set, &old);
  kill(getpid(), SIGUSR2);
  int before = usr2;
  sigpending(&pend);
  int pending = sigismember(&pend, SIGUSR2);
  sigprocmask(SIG_SETMASK, &old, NULL);
  result("sigprocmask", before == 0 && pending == 1 && usr2 == 1, "before %d pending %d after %d", before,
         pending, (int)usr2);

  struct sigaction sa = {.sa_handler = on_chld};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGCHLD, &sa, NULL);
  pid_t p = xfork();
  if (p == 0) _exit(0);
  for (int i = 0; i < 200 && !chld; i++) usleep(5000);
  wait_status(p);
  result("sigchld", chld >= 1, "SIGCHLD not delivered");
  signal(SIGCHLD, SIG_DFL);

  p = xfork();
  if (p == 0) {
    for (;;) pause();
  }
  usleep(20000);
  kill(p, SIGTERM);
  int st = wait_status(p);
  result("kill-child", WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "status %#x", st);

  signal(SIGSEGV, on_segv);
  volatile int *bad = (int *)16;
  int got = 0;
  if (sigsetjmp(segv_jmp, 1) == 0) {
    got = *bad;
  }
  result("sigsegv", segv == 1, "SIGSEGV handler ran %d times (read %d)", (int)segv, got);
  signal(SIGSEGV, SIG_DFL);
}

/* ---- pipes ---- */
static void test_pipes(void) {
  int a[2], b[2];
  if (pipe(a) || pipe(b)) {
    result("pipe", 0, "%s", strerror(errno));
    return;
  }
  enum { TOTAL = 256 * 1024 };
  pid_t p = xfork();
  if (p == 0) {
    close(a[1]);
    uint32_t sum = 0, n = 0;
    unsigned char buf[1000];
    ssize_t r;
    while ((r = read(a[0], buf, sizeof buf)) > 0)
      for (ssize_t i = 0; i < r; i++) sum = sum * 31 + buf[i], n++;
    uint32_t out[2] = {sum, n};
    (void)!write(b[1], out, sizeof out);
    _exit(0);
  }
  close(a[0]);
  close(b[1]);
  uint32_t sum = 0;
  unsigned char chunk[4096];
  for (int off = 0; off < TOTAL; off += sizeof chunk) {
    for (unsigned i = 0; i < sizeof chunk; i++) chunk[i] = (unsigned char)((off + i) * 13 + (off >> 12));
    for (unsigned i = 0; i < sizeof chunk; i++) sum = sum * 31 + chunk[i];
    if (write(a[1], chunk, sizeof chunk) != sizeof chunk) break;
  }
  close(a[1]); /* EOF for the child */
  uint32_t got[2] = {0, 0};
  ssize_t r = read(b[0], got, sizeof got);
  exit_code(p);
  result("pipe-transfer", r == sizeof got && got[0] == sum && got[1] == TOTAL, "child got %u bytes, sum %#x want %#x",
         got[1], got[0], sum);
  close(b[0]);

  signal(SIGPIPE, SIG_IGN);
  int c[2];
  (void)!pipe(c);
  close(c[0]);
  ssize_t w = write(c[1], "x", 1);
  result("pipe-epipe", w < 0 && errno == EPIPE, "write returned %zd errno %d", w, errno);
  close(c[1]);
  signal(SIGPIPE, SIG_DFL);
}

/* ---- mmap and brk ---- */
static void test_mmap(void) {
  size_t len = 1 << 20;
  unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  int ok = m != MAP_FAILED;
  int zero = 1;
  if (ok) {
    for (size_t i = 0; i < len; i += 4096) zero &= m[i] == 0;
    for (size_t i = 0; i < len; i++) m[i] = (unsigned char)(i ^ (i >> 8));
    for (size_t i = 0; i < len && ok; i++) ok = m[i] == (unsigned char)(i ^ (i >> 8));
    munmap(m, len);
  }
  result("mmap-anon", ok && zero, "mapped %d zero-filled %d", m != MAP_FAILED, zero);

  if (m != MAP_FAILED) {
    signal(SIGSEGV, on_segv);
    segv = 0;
    if (sigsetjmp(segv_jmp, 1) == 0) (void)*(volatile unsigned char *)m;
    signal(SIGSEGV, SIG_DFL);
    result("munmap-faults", segv == 1, "a read of an unmapped page did not fault");
  }

  const char *path = "/tmp/ltest.map";
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  char text[8192];
  for (unsigned i = 0; i < sizeof text; i++) text[i] = 'a' + i % 26;
  int wrote = fd >= 0 && write(fd, text, sizeof text) == sizeof text;
  char *f = wrote ? mmap(NULL, sizeof text, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
  ok = f != MAP_FAILED && memcmp(f, text, sizeof text) == 0;
  result("mmap-file-read", ok, "file mapping does not show the file");
  if (f != MAP_FAILED) {
    memcpy(f + 4096, "SHARED", 6);
    msync(f, sizeof text, MS_SYNC);
    char back[6] = {0};
    (void)!pread(fd, back, 6, 4096);
    result("mmap-file-shared-write", memcmp(back, "SHARED", 6) == 0, "read() saw %.6s", back);
    munmap(f, sizeof text);
  }
  if (fd >= 0) close(fd);
  unlink(path);

  volatile uint32_t *sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED) {
    result("mmap-shared-anon", 0, "%s", strerror(errno));
  } else {
    sh[0] = 0;
    pid_t p = xfork();
    if (p == 0) {
      sh[0] = 0x12345678;
      while (sh[1] != 0xfeedbeef) sched_yield(); /* the parent's write reaches the child */
      _exit(0);
    }
    while (sh[0] != 0x12345678) sched_yield();
    sh[1] = 0xfeedbeef;
    int st = exit_code(p);
    result("mmap-shared-anon", st == 0, "child exit %d", st);
    munmap((void *)sh, 4096);
  }

  char *b0 = (char *)syscall(SYS_brk, 0);
  char *b1 = (char *)syscall(SYS_brk, b0 + (4 << 20));
  ok = b1 == b0 + (4 << 20);
  if (ok) {
    for (char *q = b0; q < b1; q += 4096) *q = 1;
    for (char *q = b0; q < b1 && ok; q += 4096) ok = *q == 1;
  }
  char *b2 = (char *)syscall(SYS_brk, b0);
  result("brk", ok && b2 == b0, "brk %p -> %p -> %p", (void *)b0, (void *)b1, (void *)b2);
}

/* ---- stack growth ---- */
static int recurse(int depth) {
  volatile char frame[2048];
  frame[0] = (char)depth;
  frame[sizeof frame - 1] = (char)(depth >> 8);
  int r = depth == 0 ? 0 : recurse(depth - 1) + 1;
  return r + (frame[0] - (char)depth) + (frame[sizeof frame - 1] - (char)(depth >> 8));
}

static void test_stack(void) {
  int d = 3000; /* ~6 MiB of stack, under the 8 MiB default limit */
  int r = recurse(d);
  result("stack-growth", r == d, "recursion returned %d", r);
}

/* ---- threads with TLS (raw clone + set_thread_area) ---- */
struct user_desc_ {
  unsigned int entry_number, base_addr, limit;
  unsigned int flags; /* seg_32bit:1 contents:2 read_exec_only:1 limit_in_pages:1 seg_not_present:1 useable:1 */
};
#define TLS_ENTRY 7 /* musl's own TLS takes GDT entry 6 (the first free); ours is the next */
#define TLS_SEL ((TLS_ENTRY << 3) | 3)
#define NTHREADS 4
#define ROUNDS 200
static uint32_t tls_value[NTHREADS][4];
static volatile int thread_bad[NTHREADS], thread_done[NTHREADS];
static struct user_desc_ thread_desc[NTHREADS];

static long raw1(long nr, long a) {
  long r;
  __asm__ volatile("int $0x80" : "=a"(r) : "0"(nr), "b"(a) : "memory");
  return r;
}

/* clone(flags, stack, ptid, tls, ctid); the child calls fn(arg) on the new stack, then exit */
extern long raw_clone(unsigned long flags, void *stack, void *tls, int (*fn)(void *), void *arg);
__asm__(".text\n.globl raw_clone\nraw_clone:\n"
        "  push %ebx; push %esi; push %edi\n"
        "  mov 20(%esp), %ecx\n"            /* stack */
        "  mov 28(%esp), %eax; sub $8, %ecx; mov %eax, (%ecx)\n"  /* fn */
        "  mov 32(%esp), %eax; mov %eax, 4(%ecx)\n"               /* arg */
        "  mov 16(%esp), %ebx\n"            /* flags */
        "  mov 24(%esp), %esi\n"            /* tls */
        "  xor %edx, %edx; xor %edi, %edi\n"
        "  mov $120, %eax\n  int $0x80\n"
        "  test %eax, %eax\n  jnz 1f\n"
        "  pop %eax\n  call *%eax\n"         /* fn(arg): arg is now at (%esp) */
        "  mov %eax, %ebx\n  mov $1, %eax\n  int $0x80\n  hlt\n"
        "1: pop %edi; pop %esi; pop %ebx\n  ret\n");

static void make_desc(struct user_desc_ *d, int i) {
  d->entry_number = TLS_ENTRY;
  d->base_addr = (uint32_t)(uintptr_t)tls_value[i];
  d->limit = 0xfffff;
  d->flags = 1 /* seg_32bit */ | (1 << 4) /* limit_in_pages */ | (1 << 6) /* useable */;
}

/* Runs with its own %gs; only raw syscalls here (musl's errno lives behind the old %gs). */
static int thread_fn(void *arg) {
  int i = (int)(uintptr_t)arg;
  if (i % 2 == 1 && raw1(SYS_set_thread_area, (long)&thread_desc[i]) != 0) {
    thread_bad[i] = 1000;
    thread_done[i] = 1;
    return 1;
  }
  unsigned short oldgs;
  __asm__ volatile("mov %%gs, %0" : "=r"(oldgs));
  __asm__ volatile("mov %0, %%gs" ::"r"((unsigned short)TLS_SEL));
  int bad = 0;
  for (int r = 0; r < ROUNDS; r++) {
    uint32_t v, w;
    __asm__ volatile("movl %%gs:0, %0" : "=r"(v));
    __asm__ volatile("movl %%gs:4, %0" : "=r"(w));
    if (v != 0x7100 + (uint32_t)i || w != (uint32_t)r) bad++;
    __asm__ volatile("movl %0, %%gs:4" ::"r"((uint32_t)r + 1)); /* through %gs, seen in the array */
    raw1(SYS_sched_yield, 0);
  }
  __asm__ volatile("mov %0, %%gs" ::"r"(oldgs));
  thread_bad[i] = bad;
  thread_done[i] = 1;
  return 0;
}

static void test_threads(void) {
  enum { STACK = 64 * 1024 };
  const unsigned long flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | SIGCHLD;
  pid_t tid[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) {
    tls_value[i][0] = 0x7100 + i;
    tls_value[i][1] = 0;
    make_desc(&thread_desc[i], i);
    char *stack = malloc(STACK);
    /* even threads get their TLS from clone (CLONE_SETTLS), odd ones set it themselves */
    unsigned long f = i % 2 == 0 ? flags | CLONE_SETTLS : flags;
    fflush(stdout);
    tid[i] = raw_clone(f, stack + STACK, &thread_desc[i], thread_fn, (void *)(uintptr_t)i);
  }
  int bad = 0, notdone = 0;
  for (int i = 0; i < NTHREADS; i++) {
    int st = tid[i] > 0 ? wait_status(tid[i]) : -1;
    if (st != 0) bad += 10000;
    bad += thread_bad[i];
    notdone += !thread_done[i];
    if (tls_value[i][1] != ROUNDS) bad++;
  }
  result("threads-tls", bad == 0 && notdone == 0, "%d mismatches, %d not finished (tids %d %d %d %d)", bad,
         notdone, tid[0], tid[1], tid[2], tid[3]);
  /* the main thread's own TLS (musl's errno, through %gs) survived */
  errno = 0;
  close(-1);
  result("main-tls-intact", errno == EBADF, "errno %d", errno);
}

/* ---- x87 state across processes ---- */
static void x87_run(long double mul, int iters, unsigned short cw, long double *out) {
  unsigned short old;
  long double r = 1.0L;
  __asm__ volatile("fnstcw %0; fldcw %1" : "=m"(old) : "m"(cw));
  for (int i = 0; i < iters; i++) {
    /* st(0) and st(1) stay live across the system call: the kernel must keep them */
    __asm__ volatile("fmul %%st(1), %%st(0)\n\tfsqrt\n\tfmul %%st(1), %%st(0)\n\t"
                     "movl $158, %%eax\n\tint $0x80"
                     : "+t"(r)
                     : "u"(mul)
                     : "eax", "memory");
  }
  __asm__ volatile("fldcw %0" ::"m"(old));
  *out = r;
}

static void test_x87(void) {
  const long double mul[2] = {1.0000001234567L, 0.99999912345L};
  const unsigned short cw[2] = {0x037f /* 64-bit precision, nearest */, 0x0c7f /* 24-bit, toward zero */};
  const int iters = 400;
  long double want[2];
  for (int k = 0; k < 2; k++) x87_run(mul[k], iters, cw[k], &want[k]);
  int fds[2][2];
  pid_t p[2];
  for (int k = 0; k < 2; k++) {
    (void)!pipe(fds[k]);
    p[k] = xfork();
    if (p[k] == 0) {
      long double r;
      x87_run(mul[k], iters, cw[k], &r);
      (void)!write(fds[k][1], &r, 10);
      _exit(0);
    }
  }
  int ok = 1;
  for (int k = 0; k < 2; k++) {
    long double got = 0;
    ssize_t n = read(fds[k][0], &got, 10);
    exit_code(p[k]);
    ok &= n == 10 && memcmp(&got, &want[k], 10) == 0;
    close(fds[k][0]);
    close(fds[k][1]);
  }
  result("x87-across-processes", ok && want[0] != want[1], "results differ from the single-process ones");
}

/* ---- sleep and timers ---- */
static double now_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return tv.tv_sec * 1e3 + tv.tv_usec / 1e3;
}
static volatile sig_atomic_t alarms;
static void on_alrm(int s) { alarms++; (void)s; }

static void test_time(void) {
  double t0 = now_ms();
  struct timespec ts = {0, 200 * 1000 * 1000};
  nanosleep(&ts, NULL);
  double dt = now_ms() - t0;
  result("nanosleep-200ms", dt >= 199 && dt < 260, "gettimeofday saw %.1f ms", dt);

  struct timespec m0, m1;
  clock_gettime(CLOCK_MONOTONIC, &m0);
  t0 = now_ms();
  sleep(1);
  clock_gettime(CLOCK_MONOTONIC, &m1);
  double mono = (m1.tv_sec - m0.tv_sec) * 1e3 + (m1.tv_nsec - m0.tv_nsec) / 1e6;
  dt = now_ms() - t0;
  result("sleep-1s", dt >= 999 && dt < 1100 && mono >= 999 && mono < 1100 && mono - dt < 20 && dt - mono < 20,
         "gettimeofday %.1f ms, CLOCK_MONOTONIC %.1f ms", dt, mono);

  signal(SIGALRM, on_alrm);
  struct itimerval it = {{0, 50000}, {0, 50000}};
  t0 = now_ms();
  setitimer(ITIMER_REAL, &it, NULL);
  while (alarms < 5) pause();
  dt = now_ms() - t0;
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  signal(SIGALRM, SIG_DFL);
  result("itimer-5x50ms", dt >= 245 && dt < 320, "5 SIGALRMs in %.1f ms", dt);
}

/* ---- /proc ---- */
static int read_file(const char *path, char *buf, size_t n) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  ssize_t r = read(fd, buf, n - 1);
  close(fd);
  if (r < 0) return -1;
  buf[r] = 0;
  return (int)r;
}

static void test_proc(void) {
  char buf[4096];
  int pid = -1;
  char comm[64] = "", state = '?';
  if (read_file("/proc/self/stat", buf, sizeof buf) > 0) sscanf(buf, "%d (%63[^)]) %c", &pid, comm, &state);
  result("proc-self-stat", pid == getpid() && strcmp(comm, "ltest") == 0 && state == 'R', "pid %d comm %s state %c",
         pid, comm, state);

  unsigned long total = 0, freek = 0;
  if (read_file("/proc/meminfo", buf, sizeof buf) > 0) {
    char *t = strstr(buf, "MemTotal:"), *f = strstr(buf, "MemFree:");
    if (t) total = strtoul(t + 9, NULL, 10);
    if (f) freek = strtoul(f + 8, NULL, 10);
  }
  printf("meminfo: MemTotal %lu kB MemFree %lu kB\n", total, freek);
  result("proc-meminfo", total > 8192 && freek > 0 && freek < total, "MemTotal %lu MemFree %lu", total, freek);

  int up = read_file("/proc/uptime", buf, sizeof buf);
  double secs = up > 0 ? strtod(buf, NULL) : -1;
  result("proc-uptime", secs > 0, "uptime %s", up > 0 ? buf : "unreadable");
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "child-exit") == 0) return atoi(argv[2]);
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("LTEST START\n");
  test_fork_exec("/proc/self/exe");
  test_cow();
  test_signals();
  test_pipes();
  test_mmap();
  test_stack();
  test_threads();
  test_x87();
  test_time();
  test_proc();
  printf("LTEST DONE passed=%d failed=%d\n", passed, failed);
  return failed != 0;
}

/*
 * tsxen CPU benchmark workload: a compute-bound, CoreMark-like mix.
 *
 * Freestanding: no libc, no libgcc helpers (no 64-bit division or modulo),
 * no floating point. Only fixed-width arithmetic whose result is the same on
 * i686 and x86-64, so the emulated and native checksums must match.
 *
 * Each iteration runs six kernels over data regenerated from a xorshift PRNG:
 *   1. CRC32 (table driven) over a byte buffer, plus a bitwise CRC16
 *   2. a small integer matrix multiply
 *   3. quicksort (with insertion sort for short runs) of a pseudo-random array
 *   4. a linked list: permuted links, walk, search, reverse, merge sort
 *   5. string search: naive and Boyer-Moore-Horspool on a small-alphabet text
 *   6. a state machine scanning numbers out of a character stream
 */
#include "workload.h"

typedef unsigned int u32;
typedef int s32;
typedef unsigned short u16;
typedef unsigned char u8;
typedef unsigned long long u64;

#define BUF_LEN 1024
#define SORT_N 192
#define MAT_N 10
#define LIST_N 128
#define TEXT_LEN 768
#define PAT_MAX 8
#define SCAN_LEN 512

struct node {
  struct node *next;
  u32 key;
  u32 val;
};

static u32 rng_state;
static u32 crc_table[256];
static u8 buf[BUF_LEN];
static s32 arr[SORT_N];
static s32 mat_a[MAT_N][MAT_N];
static s32 mat_b[MAT_N][MAT_N];
static s32 mat_c[MAT_N][MAT_N];
static struct node nodes[LIST_N];
static u32 perm[LIST_N];
static u8 text[TEXT_LEN];
static u8 scan[SCAN_LEN];
static u32 skip[256];

static u32 rng(void) {
  u32 x = rng_state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  rng_state = x;
  return x;
}

/* Fold a value into a 64-bit running hash (FNV-like; inline 64-bit multiply, no libgcc). */
static u64 mix(u64 h, u32 v) {
  h ^= v;
  h *= 0x100000001B3ULL;
  h ^= h >> 29;
  return h;
}

/* ---- 1. CRC ------------------------------------------------------------ */

static void crc_init(void) {
  for (u32 i = 0; i < 256; i++) {
    u32 c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    crc_table[i] = c;
  }
}

static u32 crc32(const u8 *p, u32 n) {
  u32 crc = 0xFFFFFFFFu;
  for (u32 i = 0; i < n; i++) crc = crc_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

static u16 crc16_bitwise(const u8 *p, u32 n) {
  u16 crc = 0xFFFF;
  for (u32 i = 0; i < n; i++) {
    crc ^= (u16)(p[i] << 8);
    for (int k = 0; k < 8; k++) crc = (crc & 0x8000) ? (u16)((crc << 1) ^ 0x1021) : (u16)(crc << 1);
  }
  return crc;
}

static u64 kernel_crc(u64 h) {
  for (u32 i = 0; i < BUF_LEN; i += 4) {
    u32 r = rng();
    buf[i] = (u8)r;
    buf[i + 1] = (u8)(r >> 8);
    buf[i + 2] = (u8)(r >> 16);
    buf[i + 3] = (u8)(r >> 24);
  }
  h = mix(h, crc32(buf, BUF_LEN));
  h = mix(h, crc16_bitwise(buf, 64));
  return h;
}

/* ---- 2. matrix multiply ------------------------------------------------ */

static u64 kernel_matrix(u64 h, u32 iter) {
  for (int i = 0; i < MAT_N; i++) {
    for (int j = 0; j < MAT_N; j++) {
      u32 r = rng();
      mat_a[i][j] = (s32)(r & 0x7F) - 64;
      mat_b[i][j] = (s32)((r >> 8) & 0x7F) - 64;
    }
  }
  for (int i = 0; i < MAT_N; i++) {
    for (int j = 0; j < MAT_N; j++) {
      s32 sum = 0;
      for (int k = 0; k < MAT_N; k++) sum += mat_a[i][k] * mat_b[k][j];
      mat_c[i][j] = sum;
    }
  }
  s32 trace = 0;
  u32 bits = 0;
  for (int i = 0; i < MAT_N; i++) {
    trace += mat_c[i][i];
    for (int j = 0; j < MAT_N; j++) bits += ((u32)mat_c[i][j] >> 3) & 0xF;
  }
  /* exercise signed and unsigned 32-bit division by a variable divisor */
  s32 divisor = (s32)(iter & 15) + 1;
  h = mix(h, (u32)(trace / divisor));
  h = mix(h, (u32)(trace % divisor));
  h = mix(h, bits / ((iter & 7) + 3));
  return h;
}

/* ---- 3. sort ----------------------------------------------------------- */

static void insertion_sort(s32 *a, int lo, int hi) {
  for (int i = lo + 1; i <= hi; i++) {
    s32 v = a[i];
    int j = i - 1;
    while (j >= lo && a[j] > v) {
      a[j + 1] = a[j];
      j--;
    }
    a[j + 1] = v;
  }
}

static void swap(s32 *a, int i, int j) {
  s32 t = a[i];
  a[i] = a[j];
  a[j] = t;
}

static void quick_sort(s32 *a, int lo, int hi) {
  while (hi - lo > 10) {
    int mid = lo + ((hi - lo) >> 1);
    if (a[mid] < a[lo]) swap(a, mid, lo);
    if (a[hi] < a[lo]) swap(a, hi, lo);
    if (a[hi] < a[mid]) swap(a, hi, mid);
    s32 pivot = a[mid];
    int i = lo;
    int j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        swap(a, i, j);
        i++;
        j--;
      }
    }
    /* recurse into the smaller side, loop on the larger */
    if (j - lo < hi - i) {
      quick_sort(a, lo, j);
      lo = i;
    } else {
      quick_sort(a, i, hi);
      hi = j;
    }
  }
  insertion_sort(a, lo, hi);
}

static u64 kernel_sort(u64 h) {
  for (int i = 0; i < SORT_N; i++) arr[i] = (s32)rng();
  quick_sort(arr, 0, SORT_N - 1);
  u32 weighted = 0;
  u32 disorder = 0;
  for (int i = 0; i < SORT_N; i++) {
    weighted += (u32)arr[i] * (u32)(i + 1);
    if (i > 0 && arr[i - 1] > arr[i]) disorder++;
  }
  h = mix(h, weighted);
  h = mix(h, disorder);
  h = mix(h, (u32)arr[SORT_N / 2]);
  return h;
}

/* ---- 4. linked list ---------------------------------------------------- */

static struct node *list_merge(struct node *a, struct node *b) {
  struct node head;
  struct node *t = &head;
  while (a && b) {
    if (a->key <= b->key) {
      t->next = a;
      a = a->next;
    } else {
      t->next = b;
      b = b->next;
    }
    t = t->next;
  }
  t->next = a ? a : b;
  return head.next;
}

static struct node *list_sort(struct node *list) {
  if (!list || !list->next) return list;
  struct node *slow = list;
  struct node *fast = list->next;
  while (fast && fast->next) {
    slow = slow->next;
    fast = fast->next->next;
  }
  struct node *second = slow->next;
  slow->next = 0;
  return list_merge(list_sort(list), list_sort(second));
}

static u64 kernel_list(u64 h) {
  for (u32 i = 0; i < LIST_N; i++) {
    perm[i] = i;
    nodes[i].key = rng() & 0x3FF;
    nodes[i].val = i * 7 + 1;
  }
  /* Fisher-Yates shuffle (32-bit modulo by a variable) */
  for (u32 i = LIST_N - 1; i > 0; i--) {
    u32 j = rng() % (i + 1);
    u32 t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  for (u32 i = 0; i + 1 < LIST_N; i++) nodes[perm[i]].next = &nodes[perm[i + 1]];
  nodes[perm[LIST_N - 1]].next = 0;
  struct node *list = &nodes[perm[0]];

  /* walk: position-weighted sum */
  u32 acc = 0;
  u32 pos = 1;
  for (struct node *n = list; n; n = n->next) acc += n->key * pos++ + n->val;
  h = mix(h, acc);

  /* search for a few keys */
  u32 found = 0;
  for (u32 k = 0; k < 4; k++) {
    u32 want = rng() & 0x3FF;
    u32 idx = 0;
    for (struct node *n = list; n; n = n->next, idx++) {
      if (n->key == want) {
        found += idx + 1;
        break;
      }
    }
  }
  h = mix(h, found);

  /* reverse */
  struct node *prev = 0;
  while (list) {
    struct node *next = list->next;
    list->next = prev;
    prev = list;
    list = next;
  }
  list = prev;
  h = mix(h, list->val);

  /* merge sort by key (stable), then check order */
  list = list_sort(list);
  u32 ordered = 0;
  acc = 0;
  for (struct node *n = list; n; n = n->next) {
    if (n->next && n->key <= n->next->key) ordered++;
    acc = (acc << 1 | acc >> 31) ^ n->val;
  }
  h = mix(h, ordered);
  h = mix(h, acc);
  return h;
}

/* ---- 5. string search -------------------------------------------------- */

static u32 search_naive(const u8 *t, u32 n, const u8 *p, u32 m) {
  u32 count = 0;
  for (u32 i = 0; i + m <= n; i++) {
    u32 j = 0;
    while (j < m && t[i + j] == p[j]) j++;
    if (j == m) count++;
  }
  return count;
}

static u32 search_horspool(const u8 *t, u32 n, const u8 *p, u32 m) {
  for (u32 c = 0; c < 256; c++) skip[c] = m;
  for (u32 j = 0; j + 1 < m; j++) skip[p[j]] = m - 1 - j;
  u32 count = 0;
  u32 i = 0;
  while (i + m <= n) {
    u8 last = t[i + m - 1];
    if (last == p[m - 1]) {
      u32 j = 0;
      while (j + 1 < m && t[i + j] == p[j]) j++;
      if (j + 1 >= m) count++;
    }
    i += skip[last];
  }
  return count;
}

static u64 kernel_search(u64 h) {
  static const u8 alphabet[8] = {'a', 'c', 'g', 't', 'a', 'c', 'g', 'n'};
  for (u32 i = 0; i < TEXT_LEN; i++) text[i] = alphabet[rng() & 7];
  u8 pat[PAT_MAX];
  for (u32 k = 0; k < 3; k++) {
    u32 m = 3 + (rng() & 3);
    u32 at = rng() % (TEXT_LEN - PAT_MAX);
    for (u32 j = 0; j < m; j++) pat[j] = text[at + j];
    u32 a = search_naive(text, TEXT_LEN, pat, m);
    u32 b = search_horspool(text, TEXT_LEN, pat, m);
    h = mix(h, a);
    h = mix(h, a == b ? 0x600D : 0xBAD);
  }
  return h;
}

/* ---- 6. state machine -------------------------------------------------- */

enum state { S_START, S_SIGN, S_INT, S_DOT, S_FRAC, S_EXP, S_EXP_SIGN, S_EXP_INT, S_BAD, S_COUNT };

static u64 kernel_state(u64 h) {
  static const u8 chars[16] = {'0', '1', '2', '3', '4', '5', '6', '7',
                               '8', '9', '.', 'e', '+', '-', ',', ' '};
  for (u32 i = 0; i < SCAN_LEN; i++) {
    u32 r = rng();
    /* bias towards digits so that valid numbers are common */
    scan[i] = (r & 0x30) ? chars[(r >> 8) % 10] : chars[(r >> 8) & 15];
  }
  u32 visits[S_COUNT];
  u32 finals[S_COUNT];
  for (int s = 0; s < S_COUNT; s++) visits[s] = finals[s] = 0;
  enum state st = S_START;
  u32 value = 0;
  u32 values = 0;
  for (u32 i = 0; i < SCAN_LEN; i++) {
    u8 c = scan[i];
    int digit = c >= '0' && c <= '9';
    if (c == ',' || c == ' ') {
      finals[st]++;
      if (st == S_INT) values += value;
      st = S_START;
      value = 0;
      continue;
    }
    switch (st) {
      case S_START:
        st = digit ? S_INT : (c == '+' || c == '-') ? S_SIGN : c == '.' ? S_DOT : S_BAD;
        break;
      case S_SIGN:
        st = digit ? S_INT : c == '.' ? S_DOT : S_BAD;
        break;
      case S_INT:
        st = digit ? S_INT : c == '.' ? S_DOT : c == 'e' ? S_EXP : S_BAD;
        break;
      case S_DOT:
        st = digit ? S_FRAC : S_BAD;
        break;
      case S_FRAC:
        st = digit ? S_FRAC : c == 'e' ? S_EXP : S_BAD;
        break;
      case S_EXP:
        st = digit ? S_EXP_INT : (c == '+' || c == '-') ? S_EXP_SIGN : S_BAD;
        break;
      case S_EXP_SIGN:
      case S_EXP_INT:
        st = digit ? S_EXP_INT : S_BAD;
        break;
      default:
        break;
    }
    if (digit) value = value * 10 + (u32)(c - '0');
    visits[st]++;
  }
  for (int s = 0; s < S_COUNT; s++) {
    h = mix(h, visits[s]);
    h = mix(h, finals[s]);
  }
  h = mix(h, values);
  return h;
}

/* ---- driver ------------------------------------------------------------ */

unsigned int workload_run(unsigned int iterations, unsigned int seed) {
  rng_state = seed ? seed : 1;
  crc_init();
  u64 h = 0xCBF29CE484222325ULL;
  for (u32 iter = 0; iter < iterations; iter++) {
    h = kernel_crc(h);
    h = kernel_matrix(h, iter);
    h = kernel_sort(h);
    h = kernel_list(h);
    h = kernel_search(h);
    h = kernel_state(h);
  }
  return (u32)(h ^ (h >> 32));
}

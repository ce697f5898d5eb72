/* tsxen guest library: time from shared_info (abi.md §2.7.2 version protocol). */
#include "lib.h"

#define rmb() __asm__ __volatile__("lock; addl $0,0(%%esp)" ::: "memory")

void time_read(struct time_snapshot *t)
{
	volatile shared_info_t *s = HYPERVISOR_shared_info;
	u32 v2;
	t->retries = 0;
	for (;;) {
		v2 = s->time_version2;
		rmb();
		t->system_time = s->system_time;
		t->tsc_timestamp = s->tsc_timestamp;
		t->cpu_freq = s->cpu_freq;
		t->wc_sec = s->wc_sec;
		t->wc_usec = s->wc_usec;
		rmb();
		if (s->time_version1 == v2)
			break;
		t->retries++;
	}
}

u64 time_now_ns(void)
{
	struct time_snapshot t;
	u64 delta, freq;
	u32 scale = 1000000000u;
	time_read(&t);
	freq = t.cpu_freq;
	if (!freq)
		return t.system_time;
	delta = rdtsc() - t.tsc_timestamp;
	if ((s64)delta < 0)
		return t.system_time;
	/* delta * 1e9 / freq without 64-bit division: keep the product in 64 bits. */
	while (freq >> 32) {
		freq >>= 1;
		delta >>= 1;
	}
	while (delta >> 34) { /* 2^34 * 1e9 < 2^64 */
		delta >>= 1;
		freq >>= 1;
		if (!freq)
			return t.system_time;
	}
	return t.system_time + udiv64_32(delta * scale, (u32)freq, 0);
}

/* tsxen guest library: waiting for a condition with a deadline, and the command line. */
#include "lib.h"

int wait_cond(int (*cond)(void), u64 timeout_ns)
{
	u64 deadline = time_now_ns() + timeout_ns;
	while (!cond()) {
		if (time_now_ns() >= deadline)
			return 0;
		/* The timer ends the block at the deadline at the latest (VIRQ_TIMER bound). */
		HYPERVISOR_set_timer_op(deadline);
		HYPERVISOR_sched_op(SCHEDOP_block);
	}
	return 1;
}

int cmdline_word(const char *word)
{
	const char *s = (const char *)start_info->cmd_line;
	size_t n = strlen(word);
	for (; *s; s++)
		if (memcmp(s, word, n) == 0)
			return 1;
	return 0;
}

/* tsxen guest library: minimal printf (%d %i %u %x %X %s %c %p %%, width, '0', '-', l, ll). */
#include "lib.h"

/* 64/32 division with two divl (no libgcc). */
u64 udiv64_32(u64 n, u32 d, u32 *rem)
{
	u32 hi = (u32)(n >> 32), lo = (u32)n, qhi, qlo, r;
	qhi = hi / d;
	r = hi % d;
	__asm__("divl %4" : "=a"(qlo), "=d"(r) : "0"(lo), "1"(r), "rm"(d));
	if (rem)
		*rem = r;
	return ((u64)qhi << 32) | qlo;
}

struct out {
	char *buf;
	size_t size, len;
};

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void put_num(struct out *o, u64 v, u32 base, int neg, int width, int zero, int left,
		    int upper)
{
	char tmp[24];
	int n = 0, pad;
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	do {
		u32 r;
		v = udiv64_32(v, base, &r);
		tmp[n++] = digits[r];
	} while (v);
	pad = width - n - (neg ? 1 : 0);
	if (!left && !zero)
		while (pad-- > 0)
			put(o, ' ');
	if (neg)
		put(o, '-');
	if (!left && zero)
		while (pad-- > 0)
			put(o, '0');
	while (n)
		put(o, tmp[--n]);
	if (left)
		while (pad-- > 0)
			put(o, ' ');
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = { buf, size, 0 };
	for (; *fmt; fmt++) {
		int width = 0, zero = 0, left = 0, lng = 0;
		if (*fmt != '%') {
			put(&o, *fmt);
			continue;
		}
		fmt++;
		for (;; fmt++) {
			if (*fmt == '0')
				zero = 1;
			else if (*fmt == '-')
				left = 1;
			else
				break;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l') {
			lng++;
			fmt++;
		}
		switch (*fmt) {
		case 'd':
		case 'i': {
			s64 v = lng >= 2 ? va_arg(ap, s64) : (s64)va_arg(ap, s32);
			put_num(&o, v < 0 ? (u64)-v : (u64)v, 10, v < 0, width, zero, left, 0);
			break;
		}
		case 'u':
		case 'x':
		case 'X': {
			u64 v = lng >= 2 ? va_arg(ap, u64) : (u64)va_arg(ap, u32);
			put_num(&o, v, *fmt == 'u' ? 10 : 16, 0, width, zero, left, *fmt == 'X');
			break;
		}
		case 'p':
			put(&o, '0');
			put(&o, 'x');
			put_num(&o, (u32)va_arg(ap, void *), 16, 0, 8, 1, 0, 0);
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			int n;
			if (!s)
				s = "(null)";
			n = (int)strlen(s);
			if (!left)
				while (width-- > n)
					put(&o, ' ');
			while (*s)
				put(&o, *s++);
			if (left)
				while (width-- > n)
					put(&o, ' ');
			break;
		}
		case 'c':
			put(&o, (char)va_arg(ap, int));
			break;
		case '%':
			put(&o, '%');
			break;
		case '\0':
			fmt--;
			break;
		default:
			put(&o, '%');
			put(&o, *fmt);
			break;
		}
	}
	if (o.size)
		o.buf[o.len < o.size ? o.len : o.size - 1] = '\0';
	return (int)o.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

void console_write(const char *s, u32 len)
{
	HYPERVISOR_console_io(CONSOLEIO_write, len, s);
}

int printk(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	console_write(buf, (u32)n);
	return n;
}

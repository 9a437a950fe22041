/*
 * test_distance.c
 *		Checks every distance kernel variant against the scalar reference
 *		and against a double-precision computation; prints TAP.
 *
 * Built and run by test/t/001_distance_kernels.t together with
 * src/distance.c only (no PostgreSQL).  For each variant the running CPU
 * supports it compares l2_squared, inner_product, l1 and cosine_terms on
 * random inputs of every length 1..300 and many lengths up to 2,000, with
 * several value distributions and scales, at aligned and unaligned
 * addresses.  The tolerance is relative to the sum of the absolute values
 * of the terms: 1e-5 of it, or the worst-case rounding error of any
 * summation order, (n + 2) * 2^-24 of it, whichever is larger (twice
 * that between a variant and the reference).
 *
 * Further checks: no element outside [0, n) takes part in a result (NaN
 * sentinels around each array) and no load touches memory outside it (a
 * guard page on either side, SIGSEGV caught); integer inputs, whose sums
 * are exact in float, give exactly the exact result; CosineDistanceFromTerms
 * returns NaN for a zero norm and clamps to [0, 2]; DistanceKernelsInit
 * picks the widest supported variant.
 *
 * The seed is fixed so a failure can be reproduced; DISTANCE_TEST_SEED
 * overrides it.
 */
#define _GNU_SOURCE
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "distance.h"

#define MAX_LEN 2000
#define PAD 32					/* sentinel floats on either side */
#define REL_TOL 1e-5
#define ABS_TOL 1e-35
#define MAX_DIAG 5				/* failure details printed per check */

/* ---------- TAP ---------- */

static int	test_count;
static int	fail_count;

static void
tap_result(int ok, const char *fmt,...)
{
	va_list		ap;

	test_count++;
	if (!ok)
		fail_count++;
	printf("%s %d - ", ok ? "ok" : "not ok", test_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void
tap_skip(const char *fmt,...)
{
	va_list		ap;

	test_count++;
	printf("ok %d # skip ", test_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void
diag(const char *fmt,...)
{
	va_list		ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/*
 * A check accumulates many comparisons and reports once; the first few
 * mismatches are printed as diagnostics.
 */
typedef struct Check
{
	long		comparisons;
	long		failures;
} Check;

static void
check_close(Check *c, double got, double want, double tol, const char *fmt,...)
{
	va_list		ap;
	int			ok = fabs(got - want) <= tol;

	c->comparisons++;
	if (ok)
		return;
	if (c->failures++ < MAX_DIAG)
	{
		printf("# ");
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf(": got %.9g, want %.9g (diff %.3g, tolerance %.3g)\n",
			   got, want, fabs(got - want), tol);
	}
}

static void
report(const Check *c, const char *fmt,...)
{
	va_list		ap;
	char		buf[512];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (c->failures > 0)
		diag("%ld of %ld comparisons failed", c->failures, c->comparisons);
	tap_result(c->failures == 0 && c->comparisons > 0, "%s (%ld comparisons)",
			   buf, c->comparisons);
}

/* ---------- random numbers (xorshift64*) ---------- */

static uint64_t rng_state;

static uint64_t
rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(2685821657736338717);
}

/* uniform in [-1, 1) */
static double
rng_signed(void)
{
	return (double) (rng_next() >> 11) / 4503599627370496.0 - 1.0;
}

/* ---------- reference computations in double ---------- */

typedef struct Terms
{
	double		value;			/* the exact-ish sum */
	double		abs_sum;		/* sum of |term|, scales the tolerance */
} Terms;

static Terms
l2_double(const float *a, const float *b, int n)
{
	Terms		t = {0, 0};

	for (int i = 0; i < n; i++)
	{
		double		d = (double) a[i] - (double) b[i];

		t.value += d * d;
	}
	t.abs_sum = t.value;
	return t;
}

static Terms
ip_double(const float *a, const float *b, int n)
{
	Terms		t = {0, 0};

	for (int i = 0; i < n; i++)
	{
		double		p = (double) a[i] * (double) b[i];

		t.value += p;
		t.abs_sum += fabs(p);
	}
	return t;
}

static Terms
l1_double(const float *a, const float *b, int n)
{
	Terms		t = {0, 0};

	for (int i = 0; i < n; i++)
		t.value += fabs((double) a[i] - (double) b[i]);
	t.abs_sum = t.value;
	return t;
}

/*
 * Any float summation order of n rounded terms is within
 * (n + 2) * u * sum |terms| of the exact sum (u = 2^-24, the unit
 * roundoff; the 2 covers rounding a-b and the product).  That worst case
 * is the tolerance for long vectors, so no seed and no correct kernel can
 * fail; REL_TOL is a floor for short ones.  A dropped or repeated element
 * is caught exactly by test_exact_integers.
 */
static double
rel_tolerance(int n)
{
	return fmax(REL_TOL, (n + 2) * (FLT_EPSILON / 2));
}

static double
tolerance(Terms t, int n)
{
	return rel_tolerance(n) * t.abs_sum + ABS_TOL;
}

/* ---------- inputs ---------- */

enum Distribution
{
	DIST_UNIFORM,				/* uniform in [-scale, scale) */
	DIST_MIXED,					/* magnitudes spread over four decades */
	DIST_CLOSE,					/* b = a + small noise: cancellation in a-b */
	DIST_POSITIVE,				/* all positive: no cancellation at all */
	N_DISTRIBUTIONS
};

static const char *const dist_names[] = {"uniform", "mixed", "close", "positive"};
static const double scales[] = {1e-8, 1e-3, 1.0, 1e3, 1e8};

#define N_SCALES ((int) (sizeof(scales) / sizeof(scales[0])))

static void
fill_inputs(float *a, float *b, int n, int dist, double scale)
{
	for (int i = 0; i < n; i++)
	{
		double		x = rng_signed(),
					y = rng_signed();

		switch (dist)
		{
			case DIST_UNIFORM:
				break;
			case DIST_MIXED:
				x *= pow(10.0, 2.0 * rng_signed());
				y *= pow(10.0, 2.0 * rng_signed());
				break;
			case DIST_CLOSE:
				y = x + 1e-3 * y;
				break;
			case DIST_POSITIVE:
				x = fabs(x) + 0.01;
				y = fabs(y) + 0.01;
				break;
		}
		a[i] = (float) (x * scale);
		b[i] = (float) (y * scale);
	}
}

/*
 * Buffers with PAD floats of NaN before and after the data, so that an
 * element outside [0, n) used in a sum turns the result into NaN.  The
 * buffer start is 64-byte aligned; data goes at PAD + offset.
 */
typedef struct Buffers
{
	float	   *abuf;
	float	   *bbuf;
} Buffers;

static void
buffers_init(Buffers *buf)
{
	size_t		size = sizeof(float) * (MAX_LEN + 2 * PAD + 16);

	buf->abuf = aligned_alloc(64, size);
	buf->bbuf = aligned_alloc(64, size);
	if (buf->abuf == NULL || buf->bbuf == NULL)
	{
		printf("Bail out! out of memory\n");
		exit(1);
	}
}

static void
poison(float *p, int count)
{
	for (int i = 0; i < count; i++)
		p[i] = NAN;
}

/* Place n values at the given offset (in floats) inside NaN padding. */
static float *
place(float *buf, const float *src, int n, int offset)
{
	float	   *p = buf + PAD + offset;

	poison(buf, MAX_LEN + 2 * PAD + 16);
	memcpy(p, src, sizeof(float) * n);
	return p;
}

/* ---------- the main comparison ---------- */

typedef struct KernelChecks
{
	Check		vs_double[4];	/* l2, ip, l1, cosine terms */
	Check		vs_scalar[4];
	Check		cosine;			/* final cosine distance, absolute */
} KernelChecks;

static const char *const fn_names[] = {"l2_squared", "inner_product", "l1", "cosine_terms"};

/* Every length 1..300, then odd and even lengths up to MAX_LEN. */
static int
next_length(int n)
{
	static const int extra[] = {511, 512, 513, 1023, 1024, 1025, 1535, 1999, 2000};

	if (n < 300)
		return n + 1;
	for (int i = 0; i < (int) (sizeof(extra) / sizeof(extra[0])); i++)
		if (extra[i] > n && extra[i] < n + 7)
			return extra[i];
	if (n + 7 <= MAX_LEN)
		return n + 7;
	return n < MAX_LEN ? MAX_LEN : 0;
}

static void
compare_one(const DistanceKernels *k, const DistanceKernels *ref,
			KernelChecks *kc, const float *a, const float *b, int n,
			const char *where)
{
	Terms		l2 = l2_double(a, b, n),
				ip = ip_double(a, b, n),
				l1 = l1_double(a, b, n),
				na = ip_double(a, a, n),
				nb = ip_double(b, b, n);
	float		got[6],
				want[6];
	double		exact_cos;

	got[0] = k->l2_squared(a, b, n);
	got[1] = k->inner_product(a, b, n);
	got[2] = k->l1(a, b, n);
	k->cosine_terms(a, b, n, &got[3], &got[4], &got[5]);
	want[0] = ref->l2_squared(a, b, n);
	want[1] = ref->inner_product(a, b, n);
	want[2] = ref->l1(a, b, n);
	ref->cosine_terms(a, b, n, &want[3], &want[4], &want[5]);

	check_close(&kc->vs_double[0], got[0], l2.value, tolerance(l2, n),
				"%s l2_squared %s", k->name, where);
	check_close(&kc->vs_double[1], got[1], ip.value, tolerance(ip, n),
				"%s inner_product %s", k->name, where);
	check_close(&kc->vs_double[2], got[2], l1.value, tolerance(l1, n),
				"%s l1 %s", k->name, where);
	check_close(&kc->vs_double[3], got[3], ip.value, tolerance(ip, n),
				"%s cosine_terms dot %s", k->name, where);
	check_close(&kc->vs_double[3], got[4], na.value, tolerance(na, n),
				"%s cosine_terms norma %s", k->name, where);
	check_close(&kc->vs_double[3], got[5], nb.value, tolerance(nb, n),
				"%s cosine_terms normb %s", k->name, where);

	check_close(&kc->vs_scalar[0], got[0], want[0], 2 * tolerance(l2, n),
				"%s l2_squared vs scalar %s", k->name, where);
	check_close(&kc->vs_scalar[1], got[1], want[1], 2 * tolerance(ip, n),
				"%s inner_product vs scalar %s", k->name, where);
	check_close(&kc->vs_scalar[2], got[2], want[2], 2 * tolerance(l1, n),
				"%s l1 vs scalar %s", k->name, where);
	check_close(&kc->vs_scalar[3], got[3], want[3], 2 * tolerance(ip, n),
				"%s cosine_terms dot vs scalar %s", k->name, where);
	check_close(&kc->vs_scalar[3], got[4], want[4], 2 * tolerance(na, n),
				"%s cosine_terms norma vs scalar %s", k->name, where);
	check_close(&kc->vs_scalar[3], got[5], want[5], 2 * tolerance(nb, n),
				"%s cosine_terms normb vs scalar %s", k->name, where);

	/*
	 * By Cauchy-Schwarz sum |a*b| <= sqrt(norma * normb), so each term is
	 * good to rel_tolerance relative to sqrt(norma * normb), and the cosine
	 * to about three times that in absolute terms.
	 */
	exact_cos = CosineDistanceFromTerms(ip.value, na.value, nb.value);
	check_close(&kc->cosine, CosineDistanceFromTerms(got[3], got[4], got[5]),
				exact_cos, 4 * rel_tolerance(n), "%s cosine distance %s", k->name, where);
}

static void
test_random_inputs(const DistanceKernels *k, const DistanceKernels *ref,
				   Buffers *buf, int offset)
{
	KernelChecks kc;
	float	   *a = malloc(sizeof(float) * MAX_LEN);
	float	   *b = malloc(sizeof(float) * MAX_LEN);
	int			lengths = 0;

	memset(&kc, 0, sizeof(kc));
	for (int n = 1; n != 0; n = next_length(n))
	{
		lengths++;
		for (int dist = 0; dist < N_DISTRIBUTIONS; dist++)
		{
			for (int s = 0; s < N_SCALES; s++)
			{
				char		where[128];
				float	   *pa,
						   *pb;

				fill_inputs(a, b, n, dist, scales[s]);
				/* b gets a different misalignment from a when offset != 0 */
				pa = place(buf->abuf, a, n, offset);
				pb = place(buf->bbuf, b, n, offset * 3 % 16);
				snprintf(where, sizeof(where), "n=%d %s scale=%g offset=%d/%d",
						 n, dist_names[dist], scales[s], offset, offset * 3 % 16);
				compare_one(k, ref, &kc, pa, pb, n, where);
			}
		}
	}
	for (int f = 0; f < 4; f++)
		report(&kc.vs_double[f],
			   "%s: %s matches double precision, %d lengths 1..%d, %d distributions x %d scales, offset %d",
			   k->name, fn_names[f], lengths, MAX_LEN, N_DISTRIBUTIONS, N_SCALES, offset);
	for (int f = 0; f < 4; f++)
	{
		if (k == ref)
			continue;
		report(&kc.vs_scalar[f], "%s: %s matches the scalar reference, offset %d",
			   k->name, fn_names[f], offset);
	}
	report(&kc.cosine, "%s: cosine distance from its terms close to exact, offset %d",
		   k->name, offset);
	free(a);
	free(b);
}

/*
 * Small integers: every product and partial sum is an integer below 2^24,
 * exact in float whatever the order, so each kernel must return exactly the
 * exact value.  This catches a dropped or doubled element that a tolerance
 * could hide for long vectors.
 */
static void
test_exact_integers(const DistanceKernels *k, Buffers *buf)
{
	Check		c = {0, 0};
	float	   *a = malloc(sizeof(float) * MAX_LEN);
	float	   *b = malloc(sizeof(float) * MAX_LEN);

	for (int n = 1; n != 0; n = next_length(n))
	{
		float	   *pa,
				   *pb,
					dot,
					na,
					nb;
		char		where[64];

		for (int i = 0; i < n; i++)
		{
			a[i] = (float) (int) (rng_signed() * 9);
			b[i] = (float) (int) (rng_signed() * 9);
		}
		pa = place(buf->abuf, a, n, 1);
		pb = place(buf->bbuf, b, n, 0);
		snprintf(where, sizeof(where), "integers n=%d", n);
		check_close(&c, k->l2_squared(pa, pb, n), l2_double(a, b, n).value, 0,
					"%s l2_squared %s", k->name, where);
		check_close(&c, k->inner_product(pa, pb, n), ip_double(a, b, n).value, 0,
					"%s inner_product %s", k->name, where);
		check_close(&c, k->l1(pa, pb, n), l1_double(a, b, n).value, 0,
					"%s l1 %s", k->name, where);
		k->cosine_terms(pa, pb, n, &dot, &na, &nb);
		check_close(&c, dot, ip_double(a, b, n).value, 0,
					"%s cosine_terms dot %s", k->name, where);
		check_close(&c, na, ip_double(a, a, n).value, 0,
					"%s cosine_terms norma %s", k->name, where);
		check_close(&c, nb, ip_double(b, b, n).value, 0,
					"%s cosine_terms normb %s", k->name, where);
	}
	report(&c, "%s: exact results on small integers (no element dropped or counted twice)",
		   k->name);
	free(a);
	free(b);
}

/* n = 0 is never passed by the vector type, but an empty sum is 0. */
static void
test_empty(const DistanceKernels *k, Buffers *buf)
{
	Check		c = {0, 0};
	float		dot = -1,
				na = -1,
				nb = -1;
	float		none[1] = {0};
	float	   *pa = place(buf->abuf, none, 0, 0);
	float	   *pb = place(buf->bbuf, none, 0, 0);

	check_close(&c, k->l2_squared(pa, pb, 0), 0, 0, "%s l2_squared n=0", k->name);
	check_close(&c, k->inner_product(pa, pb, 0), 0, 0, "%s inner_product n=0", k->name);
	check_close(&c, k->l1(pa, pb, 0), 0, 0, "%s l1 n=0", k->name);
	k->cosine_terms(pa, pb, 0, &dot, &na, &nb);
	check_close(&c, dot, 0, 0, "%s cosine dot n=0", k->name);
	check_close(&c, na, 0, 0, "%s cosine norma n=0", k->name);
	check_close(&c, nb, 0, 0, "%s cosine normb n=0", k->name);
	report(&c, "%s: zero-length input gives 0 without touching memory", k->name);
}

/* ---------- guard pages ---------- */

static sigjmp_buf segv_jump;

static void
segv_handler(int sig)
{
	siglongjmp(segv_jump, sig);
}

/*
 * Run all four kernels; returns 0, or the signal number when one of them
 * touched inaccessible memory.  Nothing local changes after sigsetjmp.
 */
static int
call_guarded(const DistanceKernels *k, const float *a, const float *b, int n,
			 float out[6])
{
	int			sig = sigsetjmp(segv_jump, 1);

	if (sig != 0)
		return sig;
	out[0] = k->l2_squared(a, b, n);
	out[1] = k->inner_product(a, b, n);
	out[2] = k->l1(a, b, n);
	k->cosine_terms(a, b, n, &out[3], &out[4], &out[5]);
	return 0;
}

/*
 * Run every kernel on arrays that end exactly at an inaccessible page and
 * on arrays that start exactly after one.  A load outside [0, n) faults.
 */
static void
test_guard_pages(const DistanceKernels *k)
{
	long		page = sysconf(_SC_PAGESIZE);
	char	   *map;
	Check		c = {0, 0};
	struct sigaction sa,
				old_segv,
				old_bus;

	/* layout: guard | data page (a) | guard | data page (b) | guard */
	map = mmap(NULL, 5 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED ||
		mprotect(map + page, page, PROT_READ | PROT_WRITE) != 0 ||
		mprotect(map + 3 * page, page, PROT_READ | PROT_WRITE) != 0)
	{
		tap_result(0, "%s: guard pages: mmap/mprotect failed", k->name);
		return;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = segv_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);

	for (int n = 1; n <= 160; n++)
	{
		for (int at_end = 0; at_end <= 1; at_end++)
		{
			float	   *a,
					   *b,
						got[6];
			double		ip;
			int			sig;

			if (at_end)
			{
				a = (float *) (map + 2 * page) - n;
				b = (float *) (map + 4 * page) - n;
			}
			else
			{
				a = (float *) (map + page);
				b = (float *) (map + 3 * page);
			}
			for (int i = 0; i < n; i++)
			{
				a[i] = (float) (i % 7) - 3;
				b[i] = (float) (i % 5) - 2;
			}
			sig = call_guarded(k, a, b, n, got);
			if (sig != 0)
			{
				c.comparisons++;
				if (c.failures++ < MAX_DIAG)
					diag("%s: signal %d with n=%d, arrays %s a guard page",
						 k->name, sig, n, at_end ? "ending at" : "starting after");
				continue;
			}
			ip = ip_double(a, b, n).value;
			check_close(&c, got[0], l2_double(a, b, n).value, 0,
						"%s l2_squared guard n=%d", k->name, n);
			check_close(&c, got[1], ip, 0, "%s inner_product guard n=%d", k->name, n);
			check_close(&c, got[2], l1_double(a, b, n).value, 0,
						"%s l1 guard n=%d", k->name, n);
			check_close(&c, got[3], ip, 0, "%s cosine dot guard n=%d", k->name, n);
			check_close(&c, got[4], ip_double(a, a, n).value, 0,
						"%s cosine norma guard n=%d", k->name, n);
			check_close(&c, got[5], ip_double(b, b, n).value, 0,
						"%s cosine normb guard n=%d", k->name, n);
		}
	}
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
	munmap(map, 5 * page);
	report(&c, "%s: no load outside the arrays (guard pages on both sides, n=1..160)",
		   k->name);
}

/* ---------- CosineDistanceFromTerms and DistanceKernelsInit ---------- */

static void
test_cosine_from_terms(void)
{
	double		d;

	tap_result(isnan(CosineDistanceFromTerms(1, 0, 1)), "cosine: norma = 0 gives NaN");
	tap_result(isnan(CosineDistanceFromTerms(1, 1, 0)), "cosine: normb = 0 gives NaN");
	tap_result(isnan(CosineDistanceFromTerms(0, 0, 0)), "cosine: both norms 0 give NaN");

	d = CosineDistanceFromTerms(1, 1, 1);
	tap_result(d == 0, "cosine: identical direction gives 0 (got %.17g)", d);
	d = CosineDistanceFromTerms(-1, 1, 1);
	tap_result(d == 2, "cosine: opposite direction gives 2 (got %.17g)", d);
	d = CosineDistanceFromTerms(0, 5, 7);
	tap_result(d == 1, "cosine: orthogonal gives 1 (got %.17g)", d);
	d = CosineDistanceFromTerms(3, 4, 9);
	tap_result(fabs(d - 0.5) < 1e-15, "cosine: dot 3, norms^2 4 and 9 give 0.5 (got %.17g)", d);
	d = CosineDistanceFromTerms(-6, 4, 9);
	tap_result(fabs(d - 2) < 1e-15, "cosine: dot -6, norms^2 4 and 9 give 2 (got %.17g)", d);

	/* rounding in the terms can push |cos| past 1: clamp to [0, 2] */
	d = CosineDistanceFromTerms(1.0000001, 1, 1);
	tap_result(d == 0, "cosine: cos slightly above 1 is clamped to distance 0 (got %.17g)", d);
	d = CosineDistanceFromTerms(-1.0000001, 1, 1);
	tap_result(d == 2, "cosine: cos slightly below -1 is clamped to distance 2 (got %.17g)", d);
	d = CosineDistanceFromTerms(1e30, 1, 1);
	tap_result(d == 0, "cosine: cos far above 1 is clamped to distance 0 (got %.17g)", d);
	d = CosineDistanceFromTerms(-1e30, 1, 1);
	tap_result(d == 2, "cosine: cos far below -1 is clamped to distance 2 (got %.17g)", d);

	/* the same on float terms from a kernel: v with itself, v with -v */
	{
		float		v[37],
					w[37],
					dot,
					na,
					nb;
		int			in_range = 1;
		const DistanceKernels *ref;
		int			supported;

		ref = DistanceKernelVariant(0, &supported);
		for (int trial = 0; trial < 1000; trial++)
		{
			double		scale = pow(10.0, 6 * rng_signed());

			for (int i = 0; i < 37; i++)
			{
				v[i] = (float) (rng_signed() * scale);
				w[i] = -v[i];
			}
			ref->cosine_terms(v, v, 37, &dot, &na, &nb);
			d = CosineDistanceFromTerms(dot, na, nb);
			if (!(d >= 0 && d < 1e-6))
				in_range = 0;
			ref->cosine_terms(v, w, 37, &dot, &na, &nb);
			d = CosineDistanceFromTerms(dot, na, nb);
			if (!(d <= 2 && d > 2 - 1e-6))
				in_range = 0;
		}
		tap_result(in_range, "cosine: v with v in [0, 1e-6), v with -v in (2 - 1e-6, 2], 1000 random v");
	}
}

static void
test_init_picks_widest(void)
{
	const char *want = NULL;

	for (int i = 0; i < DISTANCE_KERNEL_VARIANTS; i++)
	{
		int			supported;
		const DistanceKernels *k = DistanceKernelVariant(i, &supported);

		if (k != NULL && supported)
			want = k->name;
	}
	DistanceKernelsInit();
	tap_result(want != NULL && distance_kernels.name != NULL &&
			   strcmp(distance_kernels.name, want) == 0,
			   "DistanceKernelsInit picks the widest supported variant (%s, want %s)",
			   distance_kernels.name ? distance_kernels.name : "(null)",
			   want ? want : "(none)");
}

int
main(void)
{
	const char *seed_env = getenv("DISTANCE_TEST_SEED");
	const DistanceKernels *ref;
	int			supported;
	Buffers		buf;

	rng_state = seed_env ? strtoull(seed_env, NULL, 10) : UINT64_C(20240607);
	if (rng_state == 0)
		rng_state = 1;
	diag("seed %llu (set DISTANCE_TEST_SEED to change)", (unsigned long long) rng_state);
	buffers_init(&buf);

	ref = DistanceKernelVariant(0, &supported);
	tap_result(ref != NULL && supported && strcmp(ref->name, "scalar") == 0,
			   "variant 0 is the scalar reference and is always supported");
	if (ref == NULL)
	{
		printf("Bail out! no scalar reference\n");
		return 1;
	}

	for (int i = 0; i < DISTANCE_KERNEL_VARIANTS; i++)
	{
		const DistanceKernels *k = DistanceKernelVariant(i, &supported);

		if (k == NULL)
		{
			tap_skip("variant %d is not compiled in on this platform", i);
			continue;
		}
		if (!supported)
		{
			tap_skip("%s: not supported by this CPU", k->name);
			continue;
		}
		diag("variant %d: %s", i, k->name);
		test_random_inputs(k, ref, &buf, 0);
		test_random_inputs(k, ref, &buf, 1);
		test_exact_integers(k, &buf);
		test_empty(k, &buf);
		test_guard_pages(k);
	}
	test_cosine_from_terms();
	test_init_picks_widest();

	printf("1..%d\n", test_count);
	free(buf.abuf);
	free(buf.bbuf);
	return fail_count > 0;
}

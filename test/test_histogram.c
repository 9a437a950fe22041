/*
 * test_histogram.c
 *		Checks src/histogram.c and src/stattable.c against exact answers;
 *		prints TAP.
 *
 * Built and run by test/t/030_histogram.t with those two files only (no
 * PostgreSQL).  Checks:
 *	- the bucket layout: buckets tile [0, 2^36) without gaps, every value
 *	  maps into its bucket, no bucket wider than 1/32 of its lower bound,
 *	  1 us and 1 hour are inside the exact range;
 *	- bounds: 0, the largest value kept, values above it and UINT64_MAX;
 *	- percentiles against the exact nearest-rank percentiles of sorted
 *	  samples, relative error at most 1/64 (so within the 2% promised):
 *	  log-uniform over 1 us .. 1 h, all equal, bimodal, heavy-tailed
 *	  (Pareto), a single sample, values on bucket edges, small integers
 *	  (exact), and 10^7 log-normal samples;
 *	- count, sum, min, max and mean are exact;
 *	- merging is exact: a sample split into parts and merged back is
 *	  identical, byte for byte, to the histogram of the whole, in any order;
 *	- StatTable: per-statement histograms identical to dense reference
 *	  histograms, the least frequent statements evicted first, a statement
 *	  using every bucket fits, and the structure's invariants hold after
 *	  heavy eviction.
 *
 * The seed is fixed; HISTOGRAM_TEST_SEED overrides it.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "histogram.h"
#include "stattable.h"

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

/* ---------- random numbers (splitmix64) ---------- */

static uint64_t rng_state;

static uint64_t
rng_next(void)
{
	uint64_t	z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* uniform in [0, 1) */
static double
rng_unit(void)
{
	return (double) (rng_next() >> 11) / 9007199254740992.0;
}

static double
rng_normal(void)
{
	double		u = rng_unit(),
				v = rng_unit();

	return sqrt(-2.0 * log(u + 1e-300)) * cos(2.0 * M_PI * v);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *) a,
				y = *(const uint64_t *) b;

	return x < y ? -1 : x > y;
}

/* ---------- checks ---------- */

static const double quantiles[] = {
	0.0, 0.0001, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99,
	0.999, 0.9999, 1.0
};

/*
 * Record values into a histogram, sort them, and compare every quantile
 * with the exact nearest-rank value; also count, sum, min, max.
 */
static void
check_sample(const char *name, uint64_t *values, size_t n)
{
	Histogram  *h = calloc(1, sizeof(Histogram));
	uint64_t	sum = 0;
	double		worst = 0.0;
	size_t		i,
				q;
	int			bad = 0;

	for (i = 0; i < n; i++)
	{
		HistogramRecord(h, values[i]);
		sum += values[i];
	}
	qsort(values, n, sizeof(uint64_t), cmp_u64);
	for (q = 0; q < sizeof(quantiles) / sizeof(quantiles[0]); q++)
	{
		uint64_t	exact = values[HistogramRank(quantiles[q], n) - 1];
		double		got = HistogramPercentile(h, quantiles[q]);
		double		err = exact == 0 ? fabs(got) : fabs(got - exact) / exact;

		if (err > worst)
			worst = err;
		if (!(err <= HISTOGRAM_MAX_RELATIVE_ERROR) && bad++ < 3)
			printf("# %s: q=%g exact=%llu got=%.1f error=%.4f\n", name,
				   quantiles[q], (unsigned long long) exact, got, err);
	}
	tap_result(bad == 0, "%s (n=%zu): every percentile within 1/64 (worst %.4f%%)",
			   name, n, worst * 100);
	tap_result(h->count == n && h->sum == sum && h->min == values[0] &&
			   h->max == values[n - 1] &&
			   fabs(HistogramMean(h) - (double) sum / n) <= 1e-9 * ((double) sum / n),
			   "%s: count, sum, min, max and mean are exact", name);
	free(h);
}

static void
test_layout(void)
{
	int			b,
				bad = 0;
	uint64_t	expect_lower = 0;

	for (b = 0; b < HISTOGRAM_BUCKETS; b++)
	{
		uint64_t	lo = HistogramBucketLower(b),
					hi = HistogramBucketUpper(b);

		if (lo != expect_lower || hi <= lo ||
			HistogramBucket(lo) != b || HistogramBucket(hi - 1) != b ||
			(lo >= 2 * HISTOGRAM_SUB_BUCKETS && (hi - lo) * HISTOGRAM_SUB_BUCKETS > lo) ||
			(lo < 2 * HISTOGRAM_SUB_BUCKETS && hi - lo != 1))
		{
			if (bad++ < 3)
				printf("# bucket %d: [%llu, %llu)\n", b,
					   (unsigned long long) lo, (unsigned long long) hi);
		}
		expect_lower = hi;
	}
	tap_result(bad == 0, "buckets tile the range, each value maps into its own bucket, width <= lower/32");
	tap_result(expect_lower == HISTOGRAM_MAX_VALUE + 1,
			   "the last bucket ends at 2^%d us (%.1f hours)", HISTOGRAM_MAX_BITS,
			   (HISTOGRAM_MAX_VALUE + 1) / 3.6e9);
	tap_result(HistogramBucket(1) == 1 && HistogramBucket(UINT64_C(3600000000)) < HISTOGRAM_BUCKETS - 1,
			   "1 us and 1 hour lie inside the range");
	tap_result(sizeof(Histogram) == (4 + HISTOGRAM_BUCKETS) * sizeof(uint64_t),
			   "a Histogram is one flat block of %zu bytes", sizeof(Histogram));

	/* random values map into buckets whose bounds contain them */
	bad = 0;
	for (b = 0; b < 1000000; b++)
	{
		uint64_t	v = rng_next() >> (rng_next() % 64);
		int			k = HistogramBucket(v);

		if (v <= HISTOGRAM_MAX_VALUE &&
			(HistogramBucketLower(k) > v || HistogramBucketUpper(k) <= v))
			bad++;
	}
	tap_result(bad == 0, "10^6 random values fall inside their bucket's bounds");
}

static void
test_bounds(void)
{
	Histogram  *h = calloc(1, sizeof(Histogram));
	Histogram  *z = calloc(1, sizeof(Histogram));

	tap_result(HistogramPercentile(h, 0.5) < 0 && HistogramMean(h) < 0,
			   "an empty histogram reports no percentile and no mean");
	tap_result(memcmp(h, z, sizeof(Histogram)) == 0, "an empty histogram is all zeros");
	HistogramRecord(h, 0);
	tap_result(h->buckets[0] == 1 && HistogramPercentile(h, 0.5) == 0.0,
			   "0 goes to bucket 0 and is reported as 0");
	HistogramInit(h);
	HistogramRecord(h, HISTOGRAM_MAX_VALUE);
	HistogramRecord(h, HISTOGRAM_MAX_VALUE + 1);
	HistogramRecord(h, UINT64_MAX / 4);
	tap_result(h->buckets[HISTOGRAM_BUCKETS - 1] == 3 && h->max == UINT64_MAX / 4 &&
			   h->min == HISTOGRAM_MAX_VALUE,
			   "values at and above the top go to the last bucket; min and max stay exact");
	tap_result(HistogramPercentile(h, 1.0) == (double) (UINT64_MAX / 4) &&
			   HistogramPercentile(h, 0.0) >= (double) HISTOGRAM_MAX_VALUE,
			   "percentiles stay within the exact min and max");
	HistogramInit(h);
	HistogramRecordN(h, 1000, 0);
	tap_result(h->count == 0 && memcmp(h, z, sizeof(Histogram)) == 0,
			   "recording a value zero times changes nothing");
	tap_result(HistogramRank(0.9, 10) == 9 && HistogramRank(0.5, 3) == 2 &&
			   HistogramRank(0.0, 5) == 1 && HistogramRank(1.0, 5) == 5 &&
			   HistogramRank(0.999, 1000) == 999 && HistogramRank(0.5, 1) == 1,
			   "nearest-rank: rank(q, n) = ceil(q n), 1 <= rank <= n");
	free(h);
	free(z);
}

static void
test_distributions(void)
{
	size_t		n = 200000,
				i;
	uint64_t   *v = malloc(10000000 * sizeof(uint64_t));

	for (i = 0; i < n; i++)		/* log-uniform over 1 us .. 1 h */
		v[i] = (uint64_t) exp(rng_unit() * log(3.6e9));
	check_sample("log-uniform 1 us .. 1 h", v, n);

	for (i = 0; i < n; i++)
		v[i] = 12345;
	check_sample("all equal", v, n);

	for (i = 0; i < n; i++)		/* two modes three orders of magnitude apart */
		v[i] = rng_unit() < 0.7 ? 100 + rng_next() % 20 : 50000 + rng_next() % 5000;
	check_sample("bimodal 100 us / 50 ms", v, n);

	for (i = 0; i < n; i++)		/* Pareto, alpha 1.1: a very heavy tail */
		v[i] = (uint64_t) (50.0 / pow(1.0 - rng_unit(), 1.0 / 1.1));
	check_sample("heavy-tailed (Pareto 1.1)", v, n);

	v[0] = 777777;
	check_sample("one sample", v, 1);
	v[0] = 0;
	check_sample("one sample of 0", v, 1);

	for (i = 0; i < n; i++)		/* adversarial: values on bucket edges */
	{
		int			b = (int) (rng_next() % HISTOGRAM_BUCKETS);

		v[i] = rng_next() % 2 ? HistogramBucketLower(b) : HistogramBucketUpper(b) - 1;
	}
	check_sample("bucket edges", v, n);

	for (i = 0; i < n; i++)
		v[i] = rng_next() % 64;
	check_sample("small integers 0..63", v, n);

	for (i = 0; i < n; i++)		/* half the values exactly one bucket apart */
		v[i] = i % 2 ? 1000000 : 1000000 + 31250;
	check_sample("two adjacent buckets", v, n);

	n = 10000000;
	for (i = 0; i < n; i++)		/* log-normal around 200 us */
		v[i] = (uint64_t) exp(log(200.0) + 1.5 * rng_normal());
	check_sample("10^7 log-normal", v, n);
	free(v);
}

static void
test_merge(void)
{
	size_t		n = 300000,
				i;
	int			k,
				parts = 7;
	Histogram  *whole = calloc(1, sizeof(Histogram));
	Histogram  *part = calloc(parts, sizeof(Histogram));
	Histogram  *fwd = calloc(1, sizeof(Histogram));
	Histogram  *rev = calloc(1, sizeof(Histogram));
	Histogram  *empty = calloc(1, sizeof(Histogram));

	for (i = 0; i < n; i++)
	{
		uint64_t	x = (uint64_t) exp(rng_unit() * log(1e10));

		HistogramRecord(whole, x);
		HistogramRecord(&part[rng_next() % (parts - 1)], x);	/* last part empty */
	}
	for (k = 0; k < parts; k++)
		HistogramMerge(fwd, &part[k]);
	for (k = parts - 1; k >= 0; k--)
		HistogramMerge(rev, &part[k]);
	tap_result(memcmp(fwd, whole, sizeof(Histogram)) == 0,
			   "merging %d parts gives exactly the histogram of the whole", parts);
	tap_result(memcmp(rev, whole, sizeof(Histogram)) == 0,
			   "merging in reverse order gives the same");
	HistogramMerge(fwd, empty);
	HistogramMerge(empty, whole);
	tap_result(memcmp(fwd, whole, sizeof(Histogram)) == 0 &&
			   memcmp(empty, whole, sizeof(Histogram)) == 0,
			   "merging with an empty histogram, either way round, is exact");
	free(whole);
	free(part);
	free(fwd);
	free(rev);
	free(empty);
}

/* ---------- StatTable ---------- */

typedef struct RefStmt
{
	StatKey		key;
	int			live;
	Histogram	h;
} RefStmt;

static StatKey
make_key(int i)
{
	StatKey		k;

	k.queryid = UINT64_C(0x9e3779b97f4a7c15) * (uint64_t) (i + 1);
	k.userid = 10 + i % 3;
	k.dbid = 5;
	return k;
}

/* Structural invariants: counts agree, every used entry is findable. */
static int
table_consistent(const StatTable *t)
{
	const StatEntry *e = StatTableEntries(t);
	const StatCell *c = StatTableCells(t);
	uint32_t	i,
				used = 0,
				cells = 0,
				per_entry = 0;

	for (i = 0; i < t->max_entries; i++)
		if (e[i].used)
		{
			used++;
			per_entry += e[i].ncells;
			if (StatTableFind(t, &e[i].key) != (int) i)
				return 0;
		}
	for (i = 0; i < t->max_cells; i++)
		if (c[i].entry != 0)
		{
			cells++;
			if (!e[c[i].entry - 1].used || c[i].count == 0)
				return 0;
		}
	return used == t->nentries && cells == t->ncells && per_entry == cells &&
		t->ncells <= t->cell_limit;
}

/* Every live reference statement matches the table exactly. */
static int
table_matches(const StatTable *t, RefStmt *ref, int nref, Histogram *tmp)
{
	int			i;

	for (i = 0; i < nref; i++)
	{
		int			e = StatTableFind(t, &ref[i].key);

		if (!ref[i].live)
		{
			if (e >= 0)
				return 0;
			continue;
		}
		if (e < 0)
			return 0;
		StatTableEntryHistogram(t, e, tmp);
		if (memcmp(tmp, &ref[i].h, sizeof(Histogram)) != 0)
			return 0;
	}
	return 1;
}

/* Drop from the reference what the table no longer holds. */
static void
sync_evictions(const StatTable *t, RefStmt *ref, int nref)
{
	int			i;

	for (i = 0; i < nref; i++)
		if (ref[i].live && StatTableFind(t, &ref[i].key) < 0)
		{
			ref[i].live = 0;
			HistogramInit(&ref[i].h);
		}
}

static void
test_stattable(void)
{
	uint32_t	max = 10;
	StatTable  *t = malloc(StatTableSize(max));
	void	   *scratch = malloc(StatTableScratchSize(max));
	int			nref = 400,
				i,
				j,
				ok;
	RefStmt    *ref = calloc(nref, sizeof(RefStmt));
	Histogram  *tmp = malloc(sizeof(Histogram));
	uint64_t	evicted_before;

	for (i = 0; i < nref; i++)
		ref[i].key = make_key(i);

	StatTableInit(t, max);
	/* 10 statements with 1..10 x 100 calls each, 30 buckets: no eviction */
	for (i = 0; i < 10; i++)
		for (j = 0; j < (i + 1) * 100; j++)
		{
			uint64_t	x = 500 + rng_next() % 450;

			StatTableRecord(t, &ref[i].key, x, scratch);
			HistogramRecord(&ref[i].h, x);
			ref[i].live = 1;
		}
	tap_result(t->nentries == 10 && t->evicted == 0 && table_consistent(t) &&
			   table_matches(t, ref, nref, tmp),
			   "stattable: 10 statements, each histogram identical to a dense one");

	/* an 11th statement evicts the one with the fewest calls (statement 0) */
	StatTableRecord(t, &ref[10].key, 42, scratch);
	HistogramRecord(&ref[10].h, 42);
	ref[10].live = 1;
	ref[0].live = 0;
	tap_result(t->evicted == 1 && StatTableFind(t, &ref[0].key) < 0 &&
			   table_consistent(t) && table_matches(t, ref, nref, tmp),
			   "stattable: a new statement evicts the least frequent one, the rest stay exact");

	/* one statement can use every bucket */
	StatTableClear(t);
	for (i = 0; i < nref; i++)
	{
		ref[i].live = 0;
		HistogramInit(&ref[i].h);
	}
	for (i = 0; i < HISTOGRAM_BUCKETS; i++)
	{
		StatTableRecord(t, &ref[0].key, HistogramBucketLower(i), scratch);
		HistogramRecord(&ref[0].h, HistogramBucketLower(i));
	}
	ref[0].live = 1;
	tap_result(t->ncells == HISTOGRAM_BUCKETS && t->evicted == 0 &&
			   table_consistent(t) && table_matches(t, ref, nref, tmp),
			   "stattable: one statement with all %d buckets fits", HISTOGRAM_BUCKETS);

	/* another statement spreading widely must evict, never corrupt */
	evicted_before = t->evicted;
	for (i = 0; i < 200; i++)
	{
		StatTableRecord(t, &ref[1].key, HistogramBucketLower(i * 5), scratch);
		HistogramRecord(&ref[1].h, HistogramBucketLower(i * 5));
		ref[1].live = 1;
		sync_evictions(t, ref, nref);
	}
	tap_result(t->evicted > evicted_before && StatTableFind(t, &ref[1].key) >= 0 &&
			   table_consistent(t) && table_matches(t, ref, nref, tmp),
			   "stattable: cell pressure evicts other statements, the recording one stays exact");

	/* random load: 400 statements, skewed, wide latencies */
	StatTableClear(t);
	for (i = 0; i < nref; i++)
	{
		ref[i].live = 0;
		HistogramInit(&ref[i].h);
	}
	ok = 1;
	for (j = 0; j < 200000 && ok; j++)
	{
		int			s = (int) (pow(rng_unit(), 3.0) * nref);
		uint64_t	x = (uint64_t) exp(rng_unit() * log(3.6e9));

		StatTableRecord(t, &ref[s].key, x, scratch);
		if (!ref[s].live)
			HistogramInit(&ref[s].h);
		HistogramRecord(&ref[s].h, x);
		ref[s].live = 1;
		sync_evictions(t, ref, nref);
		if (j % 997 == 0)
			ok = table_consistent(t) && table_matches(t, ref, nref, tmp);
	}
	tap_result(ok && table_consistent(t) && table_matches(t, ref, nref, tmp) &&
			   t->evicted > 0 && t->nentries <= max,
			   "stattable: 2*10^5 samples over %d statements, %llu evictions, "
			   "survivors exact, invariants hold", nref, (unsigned long long) t->evicted);
	tap_result(StatTableFind(t, &ref[0].key) >= 0,
			   "stattable: the most frequent statement survives");

	StatTableInit(t, 0);
	StatTableRecord(t, &ref[0].key, 5, scratch);
	tap_result(t->nentries == 0, "stattable: a table of size 0 records nothing");

	free(t);
	free(scratch);
	free(ref);
	free(tmp);
}

int
main(void)
{
	const char *seed = getenv("HISTOGRAM_TEST_SEED");

	rng_state = seed ? strtoull(seed, NULL, 10) : 20240605;
	printf("# seed %llu\n", (unsigned long long) rng_state);
	test_layout();
	test_bounds();
	test_distributions();
	test_merge();
	test_stattable();
	printf("1..%d\n", test_count);
	return fail_count ? 1 : 0;
}

/*
 * histogram.c
 *		Log-linear latency histograms: bucketing, recording, exact merge,
 *		percentiles.  Pure C; see histogram.h for the bucket layout and the
 *		error bound.
 */
#include "histogram.h"

#include <string.h>

/* Position of the highest set bit of v (v > 0). */
static inline int
highest_bit(uint64_t v)
{
#if defined(__GNUC__) || defined(__clang__)
	return 63 - __builtin_clzll(v);
#else
	int			e = 0;

	while (v >>= 1)
		e++;
	return e;
#endif
}

/* An empty histogram: all zeros, as shared memory starts out. */
void
HistogramInit(Histogram *h)
{
	memset(h, 0, sizeof(Histogram));
}

/*
 * The bucket of a value.  Below HISTOGRAM_SUB_BUCKETS the value is its own
 * bucket; from there on, a value with highest bit e falls into one of the
 * HISTOGRAM_SUB_BUCKETS buckets of [2^e, 2^(e+1)), found from its top
 * HISTOGRAM_SUB_BITS + 1 bits.  The numbering is continuous: bucket 32 is
 * value 32, bucket 64 is [64, 66), and so on.
 */
int
HistogramBucket(uint64_t value)
{
	int			shift;

	if (value > HISTOGRAM_MAX_VALUE)
		value = HISTOGRAM_MAX_VALUE;
	if (value < HISTOGRAM_SUB_BUCKETS)
		return (int) value;
	shift = highest_bit(value) - HISTOGRAM_SUB_BITS;
	return (shift << HISTOGRAM_SUB_BITS) + (int) (value >> shift);
}

/* Smallest value of a bucket. */
uint64_t
HistogramBucketLower(int bucket)
{
	int			shift;

	if (bucket < HISTOGRAM_SUB_BUCKETS)
		return (uint64_t) bucket;
	shift = (bucket >> HISTOGRAM_SUB_BITS) - 1;
	return (uint64_t) (bucket - (shift << HISTOGRAM_SUB_BITS)) << shift;
}

/* One past the largest value of a bucket. */
uint64_t
HistogramBucketUpper(int bucket)
{
	if (bucket < HISTOGRAM_SUB_BUCKETS)
		return (uint64_t) bucket + 1;
	return HistogramBucketLower(bucket) +
		(UINT64_C(1) << ((bucket >> HISTOGRAM_SUB_BITS) - 1));
}

void
HistogramRecordN(Histogram *h, uint64_t value, uint64_t n)
{
	if (n == 0)
		return;
	if (h->count == 0 || value < h->min)
		h->min = value;
	if (h->count == 0 || value > h->max)
		h->max = value;
	h->count += n;
	h->sum += value * n;
	h->buckets[HistogramBucket(value)] += n;
}

void
HistogramRecord(Histogram *h, uint64_t value)
{
	HistogramRecordN(h, value, 1);
}

/* dst += src; the result is the histogram of both samples together. */
void
HistogramMerge(Histogram *dst, const Histogram *src)
{
	int			i;

	if (src->count == 0)
		return;
	if (dst->count == 0 || src->min < dst->min)
		dst->min = src->min;
	if (dst->count == 0 || src->max > dst->max)
		dst->max = src->max;
	dst->count += src->count;
	dst->sum += src->sum;
	for (i = 0; i < HISTOGRAM_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
}

/*
 * The 1-based rank of the q-quantile among n sorted values (nearest-rank
 * definition: the smallest value with at least q * n values at or below
 * it).  q * n is computed in floating point, so a product a hair above an
 * integer (0.9 * 10 = 9.000000000000002) counts as that integer.
 */
uint64_t
HistogramRank(double q, uint64_t n)
{
	double		r;
	uint64_t	rank;

	if (n == 0)
		return 0;
	if (!(q > 0.0))
		return 1;
	if (q >= 1.0)
		return n;
	r = q * (double) n;
	rank = (uint64_t) r;
	if (r - (double) rank > 1e-9 * (r > 1.0 ? r : 1.0))
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return rank;
}

/*
 * The q-quantile (0 <= q <= 1): the midpoint of the bucket holding the
 * value of rank HistogramRank(q, count), kept within the exact min and max;
 * the exact max for the last rank.  Returns -1 for an empty histogram.
 */
double
HistogramPercentile(const Histogram *h, double q)
{
	uint64_t	rank = HistogramRank(q, h->count);
	uint64_t	seen = 0;
	int			i;

	if (h->count == 0)
		return -1.0;
	if (rank == h->count)
		return (double) h->max;	/* the largest value is known exactly */
	for (i = 0; i < HISTOGRAM_BUCKETS; i++)
	{
		seen += h->buckets[i];
		if (seen >= rank)
		{
			double		lo = (double) HistogramBucketLower(i);
			double		hi = (double) (HistogramBucketUpper(i) - 1);
			double		v = (lo + hi) / 2.0;

			if (v < (double) h->min)
				v = (double) h->min;
			if (v > (double) h->max)
				v = (double) h->max;
			return v;
		}
	}
	return (double) h->max;		/* not reached when counts are consistent */
}

double
HistogramMean(const Histogram *h)
{
	if (h->count == 0)
		return -1.0;
	return (double) h->sum / (double) h->count;
}

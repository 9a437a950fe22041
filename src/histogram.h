/*
 * histogram.h
 *		Log-linear latency histograms (HdrHistogram family), pure C.
 *
 * Values are unsigned integers, microseconds for latencies.  Values below
 * 2 * HISTOGRAM_SUB_BUCKETS (64) each have a bucket of their own; above
 * that, every power-of-two range [2^e, 2^(e+1)) is cut into
 * HISTOGRAM_SUB_BUCKETS (32) equal buckets.  A bucket is therefore never
 * wider than 1/32 of its lower bound, and reporting its midpoint is off by
 * less than 1/64 (1.6%) of any value in it.  The last bucket ends at
 * 2^HISTOGRAM_MAX_BITS us (19 hours); larger values are counted in it, while
 * count, sum, min and max stay exact for every value.
 *
 * A Histogram is one flat struct without pointers, all zeros when empty,
 * so it can live in shared memory; merging two is exact (counts add).
 * This file and histogram.c include nothing from PostgreSQL, so
 * test/test_histogram.c can test them alone.
 */
#ifndef AGENTMEM_HISTOGRAM_H
#define AGENTMEM_HISTOGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HISTOGRAM_SUB_BITS		5
#define HISTOGRAM_SUB_BUCKETS	(1 << HISTOGRAM_SUB_BITS)
#define HISTOGRAM_MAX_BITS		36
#define HISTOGRAM_MAX_VALUE		((UINT64_C(1) << HISTOGRAM_MAX_BITS) - 1)
#define HISTOGRAM_BUCKETS \
	((HISTOGRAM_MAX_BITS - HISTOGRAM_SUB_BITS + 1) << HISTOGRAM_SUB_BITS)

/* The most a reported percentile can be off, relative to the true value. */
#define HISTOGRAM_MAX_RELATIVE_ERROR (1.0 / (2 * HISTOGRAM_SUB_BUCKETS))

typedef struct Histogram
{
	uint64_t	count;			/* number of values recorded */
	uint64_t	sum;			/* their exact sum */
	uint64_t	min;			/* exact smallest and largest value; */
	uint64_t	max;			/* meaningless while count is 0 */
	uint64_t	buckets[HISTOGRAM_BUCKETS];
} Histogram;

extern void HistogramInit(Histogram *h);
extern int	HistogramBucket(uint64_t value);
extern uint64_t HistogramBucketLower(int bucket);
extern uint64_t HistogramBucketUpper(int bucket);
extern void HistogramRecord(Histogram *h, uint64_t value);
extern void HistogramRecordN(Histogram *h, uint64_t value, uint64_t n);
extern void HistogramMerge(Histogram *dst, const Histogram *src);
extern uint64_t HistogramRank(double q, uint64_t n);
extern double HistogramPercentile(const Histogram *h, double q);
extern double HistogramMean(const Histogram *h);

#endif							/* AGENTMEM_HISTOGRAM_H */

/*
 * ground_truth.c
 *		Exact k-nearest-neighbour ground truth for the benchmark, and a
 *		"nearest words" spot check.
 *
 * Ground truth:
 *	ground_truth -b base.fvec -q queries.fvec -o OUTDIR [-n N] [-k 100]
 *				 [-t THREADS] [--check R]
 *
 * Uses the first N base vectors (default all) and writes, for each metric,
 * OUTDIR/gt_<metric>_<N>.i32 = "AGGT" | uint32 nq | uint32 k | nq*k int32
 * (little-endian), the 0-based base indices of the k nearest base vectors of
 * each query, nearest first, ties broken by the lower index.  Metrics:
 *
 *	cosine	1 - q.b / (|q| |b|)		(a zero vector is farthest: +Inf)
 *	l2		|q - b|^2				(same order as L2)
 *	ip		-q.b					(max inner product)
 *
 * All three come from one dot product per (query, base) pair, accumulated
 * in double over the float32 components in index order (each float*float
 * product is exact in double), with the norms precomputed the same way, so
 * the result does not depend on blocking or on the thread count.  The work
 * is split over THREADS (default 2) pthreads by blocks of queries; each
 * block of queries is run against cache-sized blocks of base vectors.
 * Files are written to a temporary name and renamed into place.
 *
 * --check R recomputes R queries (spread over the set) the slow, direct way
 * (sum of squared differences for l2, separate norms for cosine, a full
 * sort) and compares them with the result; exits 1 on any difference other
 * than a swap between distances equal to within 1e-9.
 *
 * Nearest words:
 *	ground_truth --nearest WORD -b base.fvec -w base.words [-n N] [-k 5]
 *				 [-q queries.fvec -W queries.words]
 *
 * Prints the k base words nearest to WORD by cosine (WORD itself left out),
 * looking WORD up in the base words, then in the query words.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <time.h>

#include "fvec.h"

#define NMETRIC 3
#define QB 8					/* queries per block (accumulators) */
#define BB 1024					/* base vectors per block */

static const char *const metric_name[NMETRIC] = {"cosine", "l2", "ip"};

typedef struct Cand
{
	double		d;
	int32_t		i;
} Cand;

static void
die(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	fprintf(stderr, "ground_truth: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static double
now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* a is worse (farther) than b: larger distance, then larger index */
static int
worse(const Cand *a, const Cand *b)
{
	return a->d > b->d || (a->d == b->d && a->i > b->i);
}

static int
cand_cmp(const void *pa, const void *pb)
{
	const Cand *a = pa,
			   *b = pb;

	if (a->d < b->d)
		return -1;
	if (a->d > b->d)
		return 1;
	return (a->i > b->i) - (a->i < b->i);
}

/* Max-heap on worse(): h[0] is the farthest of the kept candidates. */
static void
heap_push(Cand *h, int *n, int k, double d, int32_t i)
{
	Cand		c = {d, i};
	int			pos;

	if (*n < k)
	{
		pos = (*n)++;
		while (pos > 0)
		{
			int			parent = (pos - 1) / 2;

			if (!worse(&c, &h[parent]))
				break;
			h[pos] = h[parent];
			pos = parent;
		}
		h[pos] = c;
		return;
	}
	if (!worse(&h[0], &c))
		return;
	pos = 0;
	for (;;)
	{
		int			l = 2 * pos + 1,
					r = l + 1,
					big = pos;
		const Cand *bigc = &c;

		if (l < k && worse(&h[l], bigc))
		{
			big = l;
			bigc = &h[l];
		}
		if (r < k && worse(&h[r], bigc))
			big = r;
		if (big == pos)
			break;
		h[pos] = h[big];
		pos = big;
	}
	h[pos] = c;
}

typedef struct Job
{
	const float *base;
	const float *queries;
	const double *bnorm2;
	const double *qnorm2;
	uint32_t	nb;
	uint32_t	nq;
	uint32_t	dim;
	int			k;
	int			nthreads;
	int32_t    *out[NMETRIC];	/* nq*k each */
} Job;

typedef struct Worker
{
	const Job  *job;
	int			id;
} Worker;

static double
sumsq(const float *v, uint32_t dim)
{
	double		s = 0;
	uint32_t	d;

	for (d = 0; d < dim; d++)
		s += (double) v[d] * v[d];
	return s;
}

static double
cosine_dist(double dot, double qn2, double bn2)
{
	if (qn2 == 0 || bn2 == 0)
		return INFINITY;
	return 1.0 - dot / sqrt(qn2 * bn2);
}

static void *
worker_main(void *arg)
{
	const Worker *w = arg;
	const Job  *job = w->job;
	uint32_t	dim = job->dim;
	int			k = job->k;
	double	   *qT = fv_xmalloc((size_t) dim * QB * sizeof(double));
	double	   *dots = fv_xmalloc((size_t) QB * BB * sizeof(double));
	Cand	   *heap = fv_xmalloc((size_t) NMETRIC * QB * k * sizeof(Cand));
	int			hn[NMETRIC * QB];
	uint32_t	nblocks = (job->nq + QB - 1) / QB,
				blk;

	for (blk = (uint32_t) w->id; blk < nblocks; blk += (uint32_t) job->nthreads)
	{
		uint32_t	q0 = blk * QB,
					nqb = job->nq - q0 < QB ? job->nq - q0 : QB,
					b0,
					d;
		int			q,
					m;

		/* queries of this block, transposed to [dim][QB], as double */
		for (d = 0; d < dim; d++)
			for (q = 0; q < QB; q++)
				qT[d * QB + q] = (uint32_t) q < nqb ?
					(double) job->queries[(size_t) (q0 + q) * dim + d] : 0.0;
		for (m = 0; m < NMETRIC * QB; m++)
			hn[m] = 0;

		for (b0 = 0; b0 < job->nb; b0 += BB)
		{
			uint32_t	nbb = job->nb - b0 < BB ? job->nb - b0 : BB,
						j;

			for (j = 0; j < nbb; j++)
			{
				const float *bv = job->base + (size_t) (b0 + j) * dim;
				double		acc[QB] = {0};

				for (d = 0; d < dim; d++)
				{
					double		x = (double) bv[d];
					const double *qd = qT + d * QB;

					for (q = 0; q < QB; q++)
						acc[q] += qd[q] * x;
				}
				for (q = 0; q < QB; q++)
					dots[(size_t) q * BB + j] = acc[q];
			}

			for (q = 0; q < (int) nqb; q++)
			{
				double		qn2 = job->qnorm2[q0 + q];
				Cand	   *hc = heap + (size_t) (0 * QB + q) * k,
						   *hl = heap + (size_t) (1 * QB + q) * k,
						   *hi = heap + (size_t) (2 * QB + q) * k;
				int		   *nc = &hn[0 * QB + q],
						   *nl = &hn[1 * QB + q],
						   *ni = &hn[2 * QB + q];
				const double *dq = dots + (size_t) q * BB;

				for (j = 0; j < nbb; j++)
				{
					int32_t		id = (int32_t) (b0 + j);
					double		dot = dq[j],
								bn2 = job->bnorm2[id],
								dist;

					dist = cosine_dist(dot, qn2, bn2);
					if (*nc < k || dist <= hc[0].d)
						heap_push(hc, nc, k, dist, id);
					dist = qn2 + bn2 - 2.0 * dot;
					if (*nl < k || dist <= hl[0].d)
						heap_push(hl, nl, k, dist, id);
					dist = -dot;
					if (*ni < k || dist <= hi[0].d)
						heap_push(hi, ni, k, dist, id);
				}
			}
		}

		for (m = 0; m < NMETRIC; m++)
			for (q = 0; q < (int) nqb; q++)
			{
				Cand	   *h = heap + (size_t) (m * QB + q) * k;
				int32_t    *out = job->out[m] + (size_t) (q0 + q) * k;
				int			n = hn[m * QB + q],
							r;

				qsort(h, (size_t) n, sizeof(Cand), cand_cmp);
				for (r = 0; r < k; r++)
					out[r] = r < n ? h[r].i : -1;
			}
	}
	free(qT);
	free(dots);
	free(heap);
	return NULL;
}

/* Direct, slow recomputation of one query for --check. */
static int
check_query(const Job *job, uint32_t q)
{
	const float *qv = job->queries + (size_t) q * job->dim;
	Cand	   *all = fv_xmalloc((size_t) job->nb * sizeof(Cand));
	int			m,
				bad = 0;

	for (m = 0; m < NMETRIC; m++)
	{
		const int32_t *got = job->out[m] + (size_t) q * job->k;
		uint32_t	i,
					d;
		int			r,
					kk = job->k < (int) job->nb ? job->k : (int) job->nb;

		for (i = 0; i < job->nb; i++)
		{
			const float *bv = job->base + (size_t) i * job->dim;
			double		s = 0,
						na = 0,
						nb = 0;

			for (d = 0; d < job->dim; d++)
			{
				if (m == 1)
				{
					double		t = (double) qv[d] - (double) bv[d];

					s += t * t;
				}
				else
				{
					s += (double) qv[d] * bv[d];
					na += (double) qv[d] * qv[d];
					nb += (double) bv[d] * bv[d];
				}
			}
			all[i].i = (int32_t) i;
			if (m == 0)
				all[i].d = (na == 0 || nb == 0) ? INFINITY :
					1.0 - s / (sqrt(na) * sqrt(nb));
			else if (m == 1)
				all[i].d = s;
			else
				all[i].d = -s;
		}
		qsort(all, job->nb, sizeof(Cand), cand_cmp);
		for (r = 0; r < kk; r++)
		{
			if (got[r] == all[r].i)
				continue;
			/* allow reordering among (near-)equal distances only */
			if (got[r] >= 0 && (uint32_t) got[r] < job->nb)
			{
				const float *gv = job->base + (size_t) got[r] * job->dim;
				double		s = 0,
							na = 0,
							nb = 0;

				for (d = 0; d < job->dim; d++)
				{
					if (m == 1)
					{
						double		t = (double) qv[d] - (double) gv[d];

						s += t * t;
					}
					else
					{
						s += (double) qv[d] * gv[d];
						na += (double) qv[d] * qv[d];
						nb += (double) gv[d] * gv[d];
					}
				}
				if (m == 0)
					s = 1.0 - s / (sqrt(na) * sqrt(nb));
				else if (m == 2)
					s = -s;
				if (fabs(s - all[r].d) <= 1e-9 * (1 + fabs(s)))
					continue;
			}
			fprintf(stderr, "check: query %u metric %s rank %d: got %d, "
					"direct computation says %d\n",
					q, metric_name[m], r, got[r], all[r].i);
			bad = 1;
			break;
		}
	}
	free(all);
	return bad;
}

static int32_t
find_word(char **words, uint32_t n, const char *w)
{
	uint32_t	i;

	for (i = 0; i < n; i++)
		if (strcmp(words[i], w) == 0)
			return (int32_t) i;
	return -1;
}

static void
usage(void)
{
	fprintf(stderr,
			"usage: ground_truth -b base.fvec -q queries.fvec -o OUTDIR [-n N] [-k K]\n"
			"                    [-t THREADS] [--check R]\n"
			"       ground_truth --nearest WORD -b base.fvec -w base.words [-n N] [-k K]\n"
			"                    [-q queries.fvec -W queries.words]\n");
	exit(2);
}

static int
run_nearest(const char *word, const char *bpath, const char *wpath,
			const char *qpath, const char *qwpath, uint32_t limit, int k)
{
	uint32_t	nb,
				dim,
				nw,
				i;
	float	   *base = fvec_read(bpath, limit, &nb, &dim);
	char	   *wbuf;
	char	  **words = words_read(wpath, &nw, &wbuf);
	const float *target = NULL;
	float	   *qvecs = NULL;
	int32_t		self = -1;
	Cand	   *h;
	int			hn = 0,
				r;
	double		tn2;

	if (nw < nb)
		die("%s has %u words but the base has %u vectors", wpath, nw, nb);
	self = find_word(words, nb, word);
	if (self >= 0)
	{
		target = base + (size_t) self * dim;
		printf("'%s' is base vector %d", word, self);
	}
	else if (qpath && qwpath)
	{
		uint32_t	nq,
					qdim,
					nqw;
		char	   *qwbuf;
		char	  **qwords = words_read(qwpath, &nqw, &qwbuf);
		int32_t		qi;

		qvecs = fvec_read(qpath, 0, &nq, &qdim);
		if (qdim != dim)
			die("dimension mismatch between %s and %s", bpath, qpath);
		qi = find_word(qwords, nq < nqw ? nq : nqw, word);
		if (qi >= 0)
		{
			target = qvecs + (size_t) qi * dim;
			printf("'%s' is query vector %d", word, qi);
		}
	}
	if (target == NULL)
	{
		printf("'%s' is not among the first %u base words%s\n", word, nb,
			   qpath ? " nor the query words" : "");
		return 1;
	}
	tn2 = sumsq(target, dim);
	h = fv_xmalloc((size_t) k * sizeof(Cand));
	for (i = 0; i < nb; i++)
	{
		const float *bv = base + (size_t) i * dim;
		double		dot = 0;
		uint32_t	d;

		if ((int32_t) i == self)
			continue;
		for (d = 0; d < dim; d++)
			dot += (double) target[d] * bv[d];
		heap_push(h, &hn, k, cosine_dist(dot, tn2, sumsq(bv, dim)), (int32_t) i);
	}
	qsort(h, (size_t) hn, sizeof(Cand), cand_cmp);
	printf("; %d nearest of %u base words by cosine similarity:\n", hn, nb);
	for (r = 0; r < hn; r++)
		printf("  %-20s %.4f\n", words[h[r].i], 1.0 - h[r].d);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *bpath = NULL,
			   *qpath = NULL,
			   *outdir = NULL,
			   *wpath = NULL,
			   *qwpath = NULL,
			   *nearest = NULL;
	uint32_t	limit = 0,
				nb,
				nq,
				dim,
				qdim,
				i;
	int			k = -1,
				nthreads = 2,
				ncheck = 0,
				a,
				m,
				t;
	float	   *base,
			   *queries;
	double	   *bnorm2,
			   *qnorm2,
				t0,
				t1;
	Job			job;
	pthread_t  *tids;
	Worker	   *workers;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (a = 1; a < argc; a++)
	{
		const char *o = argv[a];

		if (a + 1 >= argc)
			usage();
		if (strcmp(o, "-b") == 0)
			bpath = argv[++a];
		else if (strcmp(o, "-q") == 0)
			qpath = argv[++a];
		else if (strcmp(o, "-o") == 0)
			outdir = argv[++a];
		else if (strcmp(o, "-w") == 0)
			wpath = argv[++a];
		else if (strcmp(o, "-W") == 0)
			qwpath = argv[++a];
		else if (strcmp(o, "-n") == 0)
			limit = (uint32_t) strtoul(argv[++a], NULL, 10);
		else if (strcmp(o, "-k") == 0)
			k = atoi(argv[++a]);
		else if (strcmp(o, "-t") == 0)
			nthreads = atoi(argv[++a]);
		else if (strcmp(o, "--check") == 0)
			ncheck = atoi(argv[++a]);
		else if (strcmp(o, "--nearest") == 0)
			nearest = argv[++a];
		else
			usage();
	}

	if (nearest)
	{
		if (!bpath || !wpath)
			usage();
		return run_nearest(nearest, bpath, wpath, qpath, qwpath, limit,
						   k > 0 ? k : 5);
	}

	if (!bpath || !qpath || !outdir)
		usage();
	if (k < 0)
		k = 100;
	if (k < 1 || nthreads < 1 || nthreads > 256)
		usage();

	t0 = now_sec();
	base = fvec_read(bpath, 0, &nb, &dim);
	if (limit > nb)
		die("asked for N=%u but %s has only %u vectors", limit, bpath, nb);
	if (limit > 0)
		nb = limit;
	queries = fvec_read(qpath, 0, &nq, &qdim);
	if (qdim != dim)
		die("dimension mismatch: base %u, queries %u", dim, qdim);
	if ((uint32_t) k > nb)
		die("k=%d is larger than the base size %u", k, nb);

	bnorm2 = fv_xmalloc((size_t) nb * sizeof(double));
	qnorm2 = fv_xmalloc((size_t) nq * sizeof(double));
	for (i = 0; i < nb; i++)
		bnorm2[i] = sumsq(base + (size_t) i * dim, dim);
	for (i = 0; i < nq; i++)
		qnorm2[i] = sumsq(queries + (size_t) i * dim, dim);

	memset(&job, 0, sizeof(job));
	job.base = base;
	job.queries = queries;
	job.bnorm2 = bnorm2;
	job.qnorm2 = qnorm2;
	job.nb = nb;
	job.nq = nq;
	job.dim = dim;
	job.k = k;
	job.nthreads = nthreads;
	for (m = 0; m < NMETRIC; m++)
		job.out[m] = fv_xmalloc((size_t) nq * k * sizeof(int32_t));

	t1 = now_sec();
	tids = fv_xmalloc((size_t) nthreads * sizeof(pthread_t));
	workers = fv_xmalloc((size_t) nthreads * sizeof(Worker));
	for (t = 0; t < nthreads; t++)
	{
		workers[t].job = &job;
		workers[t].id = t;
		if (pthread_create(&tids[t], NULL, worker_main, &workers[t]) != 0)
			die("pthread_create failed");
	}
	for (t = 0; t < nthreads; t++)
		pthread_join(tids[t], NULL);

	for (m = 0; m < NMETRIC; m++)
	{
		char		path[4096],
					tmp[4200];

		snprintf(path, sizeof(path), "%s/gt_%s_%u.i32", outdir, metric_name[m], nb);
		snprintf(tmp, sizeof(tmp), "%s.tmp", path);
		gt_write(tmp, job.out[m], nq, (uint32_t) k);
		if (rename(tmp, path) != 0)
			die("cannot rename %s to %s: %s", tmp, path, strerror(errno));
		printf("wrote %s\n", path);
	}
	printf("ground truth: %u queries x %u base x dim %u, k=%d, %d metrics, "
		   "%d threads: load %.1f s, search %.1f s\n",
		   nq, nb, dim, k, NMETRIC, nthreads, t1 - t0, now_sec() - t1);

	if (ncheck > 0)
	{
		int			bad = 0,
					c;

		if ((uint32_t) ncheck > nq)
			ncheck = (int) nq;
		for (c = 0; c < ncheck; c++)
			bad |= check_query(&job, (uint32_t) ((uint64_t) c * nq / ncheck));
		if (bad)
			die("--check failed");
		printf("check: %d queries recomputed directly, all %d metrics agree\n",
			   ncheck, NMETRIC);
	}
	return 0;
}

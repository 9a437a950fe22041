/*
 * distance.c
 *		Scalar reference kernels and their AVX2/AVX-512 counterparts.
 *
 * The SIMD kernels keep several independent accumulators so that the
 * floating-point add latency is hidden; the tail that does not fill a
 * register is handled with a scalar loop (AVX2) or a masked load (AVX-512).
 * Results differ from the scalar reference only by summation order.
 */
#include <math.h>
#include <stddef.h>

#include "distance.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_X86_SIMD 1
#include <immintrin.h>
#endif

/* ---------- scalar reference ---------- */

static float
l2_squared_scalar(const float *a, const float *b, int n)
{
	float		sum = 0.0f;

	for (int i = 0; i < n; i++)
	{
		float		d = a[i] - b[i];

		sum += d * d;
	}
	return sum;
}

static float
inner_product_scalar(const float *a, const float *b, int n)
{
	float		sum = 0.0f;

	for (int i = 0; i < n; i++)
		sum += a[i] * b[i];
	return sum;
}

static float
l1_scalar(const float *a, const float *b, int n)
{
	float		sum = 0.0f;

	for (int i = 0; i < n; i++)
		sum += fabsf(a[i] - b[i]);
	return sum;
}

static void
cosine_terms_scalar(const float *a, const float *b, int n,
					float *dot, float *norma, float *normb)
{
	float		d = 0.0f,
				na = 0.0f,
				nb = 0.0f;

	for (int i = 0; i < n; i++)
	{
		d += a[i] * b[i];
		na += a[i] * a[i];
		nb += b[i] * b[i];
	}
	*dot = d;
	*norma = na;
	*normb = nb;
}

static const DistanceKernels scalar_kernels = {
	"scalar", l2_squared_scalar, inner_product_scalar, l1_scalar,
	cosine_terms_scalar
};

#ifdef HAVE_X86_SIMD

/* ---------- AVX2 + FMA ---------- */

#define AVX2_TARGET __attribute__((target("avx2,fma")))

AVX2_TARGET static inline float
hsum256(__m256 v)
{
	__m128		lo = _mm256_castps256_ps128(v);
	__m128		hi = _mm256_extractf128_ps(v, 1);

	lo = _mm_add_ps(lo, hi);
	lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
	lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
	return _mm_cvtss_f32(lo);
}

AVX2_TARGET static float
l2_squared_avx2(const float *a, const float *b, int n)
{
	__m256		s0 = _mm256_setzero_ps(),
				s1 = _mm256_setzero_ps();
	int			i = 0;
	float		sum;

	for (; i + 16 <= n; i += 16)
	{
		__m256		d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
		__m256		d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));

		s0 = _mm256_fmadd_ps(d0, d0, s0);
		s1 = _mm256_fmadd_ps(d1, d1, s1);
	}
	for (; i + 8 <= n; i += 8)
	{
		__m256		d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));

		s0 = _mm256_fmadd_ps(d0, d0, s0);
	}
	sum = hsum256(_mm256_add_ps(s0, s1));
	for (; i < n; i++)
	{
		float		d = a[i] - b[i];

		sum += d * d;
	}
	return sum;
}

AVX2_TARGET static float
inner_product_avx2(const float *a, const float *b, int n)
{
	__m256		s0 = _mm256_setzero_ps(),
				s1 = _mm256_setzero_ps();
	int			i = 0;
	float		sum;

	for (; i + 16 <= n; i += 16)
	{
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
	sum = hsum256(_mm256_add_ps(s0, s1));
	for (; i < n; i++)
		sum += a[i] * b[i];
	return sum;
}

AVX2_TARGET static float
l1_avx2(const float *a, const float *b, int n)
{
	const __m256 signmask = _mm256_set1_ps(-0.0f);
	__m256		s0 = _mm256_setzero_ps();
	int			i = 0;
	float		sum;

	for (; i + 8 <= n; i += 8)
	{
		__m256		d = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));

		s0 = _mm256_add_ps(s0, _mm256_andnot_ps(signmask, d));
	}
	sum = hsum256(s0);
	for (; i < n; i++)
		sum += fabsf(a[i] - b[i]);
	return sum;
}

AVX2_TARGET static void
cosine_terms_avx2(const float *a, const float *b, int n,
				  float *dot, float *norma, float *normb)
{
	__m256		sd = _mm256_setzero_ps(),
				sa = _mm256_setzero_ps(),
				sb = _mm256_setzero_ps();
	int			i = 0;
	float		d,
				na,
				nb;

	for (; i + 8 <= n; i += 8)
	{
		__m256		va = _mm256_loadu_ps(a + i);
		__m256		vb = _mm256_loadu_ps(b + i);

		sd = _mm256_fmadd_ps(va, vb, sd);
		sa = _mm256_fmadd_ps(va, va, sa);
		sb = _mm256_fmadd_ps(vb, vb, sb);
	}
	d = hsum256(sd);
	na = hsum256(sa);
	nb = hsum256(sb);
	for (; i < n; i++)
	{
		d += a[i] * b[i];
		na += a[i] * a[i];
		nb += b[i] * b[i];
	}
	*dot = d;
	*norma = na;
	*normb = nb;
}

static const DistanceKernels avx2_kernels = {
	"avx2", l2_squared_avx2, inner_product_avx2, l1_avx2, cosine_terms_avx2
};

/* ---------- AVX-512F ---------- */

#define AVX512_TARGET __attribute__((target("avx512f")))

/* Mask selecting the first (n - i) lanes, for the tail of a loop. */
AVX512_TARGET static inline __mmask16
tail_mask(int remaining)
{
	return (__mmask16) ((1u << remaining) - 1);
}

AVX512_TARGET static float
l2_squared_avx512(const float *a, const float *b, int n)
{
	__m512		s0 = _mm512_setzero_ps(),
				s1 = _mm512_setzero_ps();
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		__m512		d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
		__m512		d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));

		s0 = _mm512_fmadd_ps(d0, d0, s0);
		s1 = _mm512_fmadd_ps(d1, d1, s1);
	}
	for (; i < n; i += 16)
	{
		__mmask16	m = n - i >= 16 ? 0xFFFF : tail_mask(n - i);
		__m512		d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i),
									  _mm512_maskz_loadu_ps(m, b + i));

		s0 = _mm512_fmadd_ps(d, d, s0);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

AVX512_TARGET static float
inner_product_avx512(const float *a, const float *b, int n)
{
	__m512		s0 = _mm512_setzero_ps(),
				s1 = _mm512_setzero_ps();
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
	}
	for (; i < n; i += 16)
	{
		__mmask16	m = n - i >= 16 ? 0xFFFF : tail_mask(n - i);

		s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i),
							 _mm512_maskz_loadu_ps(m, b + i), s0);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

AVX512_TARGET static float
l1_avx512(const float *a, const float *b, int n)
{
	__m512		s0 = _mm512_setzero_ps();

	for (int i = 0; i < n; i += 16)
	{
		__mmask16	m = n - i >= 16 ? 0xFFFF : tail_mask(n - i);
		__m512		d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i),
									  _mm512_maskz_loadu_ps(m, b + i));

		s0 = _mm512_add_ps(s0, _mm512_abs_ps(d));
	}
	return _mm512_reduce_add_ps(s0);
}

AVX512_TARGET static void
cosine_terms_avx512(const float *a, const float *b, int n,
					float *dot, float *norma, float *normb)
{
	__m512		sd = _mm512_setzero_ps(),
				sa = _mm512_setzero_ps(),
				sb = _mm512_setzero_ps();

	for (int i = 0; i < n; i += 16)
	{
		__mmask16	m = n - i >= 16 ? 0xFFFF : tail_mask(n - i);
		__m512		va = _mm512_maskz_loadu_ps(m, a + i);
		__m512		vb = _mm512_maskz_loadu_ps(m, b + i);

		sd = _mm512_fmadd_ps(va, vb, sd);
		sa = _mm512_fmadd_ps(va, va, sa);
		sb = _mm512_fmadd_ps(vb, vb, sb);
	}
	*dot = _mm512_reduce_add_ps(sd);
	*norma = _mm512_reduce_add_ps(sa);
	*normb = _mm512_reduce_add_ps(sb);
}

static const DistanceKernels avx512_kernels = {
	"avx512", l2_squared_avx512, inner_product_avx512, l1_avx512,
	cosine_terms_avx512
};

static int
cpu_has_avx2_fma(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static int
cpu_has_avx512f(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f");
}
#endif							/* HAVE_X86_SIMD */

DistanceKernels distance_kernels = {
	"scalar", l2_squared_scalar, inner_product_scalar, l1_scalar,
	cosine_terms_scalar
};

const DistanceKernels *
DistanceKernelVariant(int i, int *supported)
{
	*supported = 0;
	switch (i)
	{
		case 0:
			*supported = 1;
			return &scalar_kernels;
#ifdef HAVE_X86_SIMD
		case 1:
			*supported = cpu_has_avx2_fma();
			return &avx2_kernels;
		case 2:
			*supported = cpu_has_avx512f();
			return &avx512_kernels;
#endif
		default:
			return NULL;
	}
}

/*
 * Pick the widest supported variant.  __builtin_cpu_supports also checks
 * that the OS saves the wide registers (XGETBV), so a kernel chosen here is
 * safe to run.
 */
void
DistanceKernelsInit(void)
{
	for (int i = DISTANCE_KERNEL_VARIANTS - 1; i >= 0; i--)
	{
		int			supported;
		const DistanceKernels *k = DistanceKernelVariant(i, &supported);

		if (k != NULL && supported)
		{
			distance_kernels = *k;
			return;
		}
	}
}

double
CosineDistanceFromTerms(double dot, double norma, double normb)
{
	double		similarity;

	if (norma == 0 || normb == 0)
		return NAN;
	similarity = dot / sqrt(norma * normb);
	/* rounding can push |cos| slightly past 1 */
	if (similarity > 1)
		similarity = 1;
	else if (similarity < -1)
		similarity = -1;
	return 1 - similarity;
}

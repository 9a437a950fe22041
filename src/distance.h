/*
 * distance.h
 *		Distance kernels over float arrays, with no PostgreSQL dependency.
 *
 * The scalar kernels are the reference.  SIMD variants (AVX2+FMA, AVX-512)
 * are compiled with per-function target attributes so the default build
 * stays portable, and DistanceKernelsInit() picks the best set the running
 * CPU supports, once, at load time.  Everything here is pure code so that
 * test/test_distance.c can check every variant against the reference.
 */
#ifndef AGENTMEM_DISTANCE_H
#define AGENTMEM_DISTANCE_H

typedef float (*DistanceFn) (const float *a, const float *b, int n);

/* Dot product plus both squared norms, for cosine distance in one pass. */
typedef void (*CosineTermsFn) (const float *a, const float *b, int n,
							   float *dot, float *norma, float *normb);

typedef struct DistanceKernels
{
	const char *name;			/* "scalar", "avx2", "avx512" */
	DistanceFn	l2_squared;		/* sum (a-b)^2 */
	DistanceFn	inner_product;	/* sum a*b */
	DistanceFn	l1;				/* sum |a-b| */
	CosineTermsFn cosine_terms;
} DistanceKernels;

/* The kernels in use, chosen by DistanceKernelsInit(). */
extern DistanceKernels distance_kernels;

extern void DistanceKernelsInit(void);

/*
 * Every variant compiled in, reference first; supported[] says whether the
 * running CPU can execute it.  Used by the kernel tests.
 */
#define DISTANCE_KERNEL_VARIANTS 3
extern const DistanceKernels *DistanceKernelVariant(int i, int *supported);

/* Cosine distance from the terms; 1 - cos, NaN when a norm is zero. */
extern double CosineDistanceFromTerms(double dot, double norma, double normb);

#endif							/* AGENTMEM_DISTANCE_H */

/*
 * vector_ops.c
 *		Distances, arithmetic, comparison, hashing and aggregates for vector.
 *
 * Distances go through the kernels chosen at load time (distance.c).  The
 * float kernels can overflow or underflow for extreme element values; the
 * SQL-level functions then recompute in double precision so a huge but
 * finite vector gets the right answer instead of Infinity or NaN.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "utils/array.h"
#include "utils/float.h"

#include "distance.h"
#include "vector.h"

PG_FUNCTION_INFO_V1(l2_distance);
PG_FUNCTION_INFO_V1(vector_l2_squared_distance);
PG_FUNCTION_INFO_V1(inner_product);
PG_FUNCTION_INFO_V1(vector_negative_inner_product);
PG_FUNCTION_INFO_V1(cosine_distance);
PG_FUNCTION_INFO_V1(vector_spherical_distance);
PG_FUNCTION_INFO_V1(l1_distance);
PG_FUNCTION_INFO_V1(vector_dims);
PG_FUNCTION_INFO_V1(vector_norm);
PG_FUNCTION_INFO_V1(l2_normalize);
PG_FUNCTION_INFO_V1(subvector);
PG_FUNCTION_INFO_V1(vector_add);
PG_FUNCTION_INFO_V1(vector_sub);
PG_FUNCTION_INFO_V1(vector_mul);
PG_FUNCTION_INFO_V1(vector_concat);
PG_FUNCTION_INFO_V1(vector_lt);
PG_FUNCTION_INFO_V1(vector_le);
PG_FUNCTION_INFO_V1(vector_eq);
PG_FUNCTION_INFO_V1(vector_ne);
PG_FUNCTION_INFO_V1(vector_ge);
PG_FUNCTION_INFO_V1(vector_gt);
PG_FUNCTION_INFO_V1(vector_cmp);
PG_FUNCTION_INFO_V1(vector_hash);
PG_FUNCTION_INFO_V1(vector_hash_extended);
PG_FUNCTION_INFO_V1(vector_accum);
PG_FUNCTION_INFO_V1(vector_combine);
PG_FUNCTION_INFO_V1(vector_avg);

/* ---------- double-precision fallbacks for extreme values ---------- */

static double
l2_squared_double(const Vector *a, const Vector *b)
{
	double		sum = 0;

	for (int i = 0; i < a->dim; i++)
	{
		double		d = (double) a->x[i] - b->x[i];

		sum += d * d;
	}
	return sum;
}

static double
inner_product_double(const Vector *a, const Vector *b)
{
	double		sum = 0;

	for (int i = 0; i < a->dim; i++)
		sum += (double) a->x[i] * b->x[i];
	return sum;
}

static double
l1_double(const Vector *a, const Vector *b)
{
	double		sum = 0;

	for (int i = 0; i < a->dim; i++)
		sum += fabs((double) a->x[i] - b->x[i]);
	return sum;
}

/* A zero from the float kernel may be an underflow of tiny differences. */
static double
l2_squared(const Vector *a, const Vector *b)
{
	float		r = distance_kernels.l2_squared(a->x, b->x, a->dim);

	return (isinf(r) || r == 0) ? l2_squared_double(a, b) : r;
}

/*
 * Float products of tiny values underflow to zero, so a zero result is
 * checked in double too; that is rare and cheap next to the query.
 */
static double
inner_product_checked(const Vector *a, const Vector *b)
{
	float		r = distance_kernels.inner_product(a->x, b->x, a->dim);

	return (isinf(r) || isnan(r) || r == 0) ? inner_product_double(a, b) : r;
}

static double
cosine_distance_checked(const Vector *a, const Vector *b)
{
	float		dot,
				na,
				nb;

	distance_kernels.cosine_terms(a->x, b->x, a->dim, &dot, &na, &nb);
	if (!isfinite(dot) || !isfinite(na) || !isfinite(nb) || na == 0 || nb == 0)
	{
		/* scale-invariant: divide by the largest magnitude, then retry */
		double		d = 0,
					da = 0,
					db = 0,
					sa = 0,
					sb = 0;

		for (int i = 0; i < a->dim; i++)
		{
			sa = Max(sa, fabs(a->x[i]));
			sb = Max(sb, fabs(b->x[i]));
		}
		if (sa == 0 || sb == 0)
			return NAN;
		for (int i = 0; i < a->dim; i++)
		{
			double		x = a->x[i] / sa,
						y = b->x[i] / sb;

			d += x * y;
			da += x * x;
			db += y * y;
		}
		return CosineDistanceFromTerms(d, da, db);
	}
	return CosineDistanceFromTerms(dot, na, nb);
}

/* ---------- distances ---------- */

Datum
l2_distance(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);

	CheckVectorDims(a, b);
	PG_RETURN_FLOAT8(sqrt(l2_squared(a, b)));
}

Datum
vector_l2_squared_distance(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);

	CheckVectorDims(a, b);
	PG_RETURN_FLOAT8(l2_squared(a, b));
}

Datum
inner_product(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);

	CheckVectorDims(a, b);
	PG_RETURN_FLOAT8(inner_product_checked(a, b));
}

Datum
vector_negative_inner_product(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);

	CheckVectorDims(a, b);
	PG_RETURN_FLOAT8(-inner_product_checked(a, b));
}

Datum
cosine_distance(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);

	CheckVectorDims(a, b);
	PG_RETURN_FLOAT8(cosine_distance_checked(a, b));
}

/* Angle over pi, in [0, 1]: a metric, unlike 1 - cos. */
Datum
vector_spherical_distance(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);
	double		cosdist;

	CheckVectorDims(a, b);
	cosdist = cosine_distance_checked(a, b);
	if (isnan(cosdist))
		PG_RETURN_FLOAT8(cosdist);
	PG_RETURN_FLOAT8(acos(Min(1.0, Max(-1.0, 1.0 - cosdist))) / M_PI);
}

Datum
l1_distance(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);
	float		r;

	CheckVectorDims(a, b);
	r = distance_kernels.l1(a->x, b->x, a->dim);
	PG_RETURN_FLOAT8(isinf(r) ? l1_double(a, b) : r);
}

/* ---------- functions of one vector ---------- */

Datum
vector_dims(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);

	PG_RETURN_INT32(a->dim);
}

static double
norm_of(const Vector *a)
{
	double		sum = 0;

	for (int i = 0; i < a->dim; i++)
		sum += (double) a->x[i] * a->x[i];
	return sqrt(sum);
}

Datum
vector_norm(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(norm_of(PG_GETARG_VECTOR_P(0)));
}

/* Unit vector in the same direction; the zero vector stays zero. */
Datum
l2_normalize(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *result = InitVector(a->dim);
	double		norm = norm_of(a);

	if (norm > 0)
	{
		for (int i = 0; i < a->dim; i++)
			result->x[i] = a->x[i] / norm;
	}
	PG_RETURN_VECTOR_P(result);
}

/* subvector(v, start, count): 1-based, clipped to the vector like substr. */
Datum
subvector(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	int64		start = PG_GETARG_INT32(1);
	int64		count = PG_GETARG_INT32(2);
	int64		end = start + count;
	Vector	   *result;

	if (count < 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector must have at least 1 dimension")));
	start = Max(start, 1);
	end = Min(end, (int64) a->dim + 1);
	if (end <= start)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector must have at least 1 dimension")));
	result = InitVector(end - start);
	memcpy(result->x, a->x + start - 1, sizeof(float) * (end - start));
	PG_RETURN_VECTOR_P(result);
}

/* ---------- element-wise arithmetic ---------- */

static void
check_overflow(const Vector *result)
{
	for (int i = 0; i < result->dim; i++)
	{
		if (isinf(result->x[i]))
			float_overflow_error();
	}
}

Datum
vector_add(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);
	Vector	   *result;

	CheckVectorDims(a, b);
	result = InitVector(a->dim);
	for (int i = 0; i < a->dim; i++)
		result->x[i] = a->x[i] + b->x[i];
	check_overflow(result);
	PG_RETURN_VECTOR_P(result);
}

Datum
vector_sub(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);
	Vector	   *result;

	CheckVectorDims(a, b);
	result = InitVector(a->dim);
	for (int i = 0; i < a->dim; i++)
		result->x[i] = a->x[i] - b->x[i];
	check_overflow(result);
	PG_RETURN_VECTOR_P(result);
}

Datum
vector_mul(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);
	Vector	   *result;

	CheckVectorDims(a, b);
	result = InitVector(a->dim);
	for (int i = 0; i < a->dim; i++)
		result->x[i] = a->x[i] * b->x[i];
	check_overflow(result);
	PG_RETURN_VECTOR_P(result);
}

Datum
vector_concat(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);
	Vector	   *result;

	CheckVectorDim(a->dim + b->dim);
	result = InitVector(a->dim + b->dim);
	memcpy(result->x, a->x, sizeof(float) * a->dim);
	memcpy(result->x + a->dim, b->x, sizeof(float) * b->dim);
	PG_RETURN_VECTOR_P(result);
}

/* ---------- ordering: element by element, then by length ---------- */

static int
vector_cmp_internal(const Vector *a, const Vector *b)
{
	int			n = Min(a->dim, b->dim);

	for (int i = 0; i < n; i++)
	{
		if (a->x[i] < b->x[i])
			return -1;
		if (a->x[i] > b->x[i])
			return 1;
	}
	return (a->dim > b->dim) - (a->dim < b->dim);
}

#define VECTOR_CMP_FUNC(name, test) \
Datum \
name(PG_FUNCTION_ARGS) \
{ \
	Vector	   *a = PG_GETARG_VECTOR_P(0); \
	Vector	   *b = PG_GETARG_VECTOR_P(1); \
	int			c = vector_cmp_internal(a, b); \
	PG_RETURN_BOOL(test); \
}

VECTOR_CMP_FUNC(vector_lt, c < 0)
VECTOR_CMP_FUNC(vector_le, c <= 0)
VECTOR_CMP_FUNC(vector_eq, c == 0)
VECTOR_CMP_FUNC(vector_ne, c != 0)
VECTOR_CMP_FUNC(vector_ge, c >= 0)
VECTOR_CMP_FUNC(vector_gt, c > 0)

Datum
vector_cmp(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);

	PG_RETURN_INT32(vector_cmp_internal(a, b));
}

/*
 * Hash the values with -0 folded into +0, since the two compare equal;
 * NaN cannot occur in a vector.
 */
static uint64
vector_hash_internal(const Vector *a, uint64 seed)
{
	float	   *vals = palloc(sizeof(float) * a->dim);
	uint64		h;

	for (int i = 0; i < a->dim; i++)
		vals[i] = a->x[i] == 0 ? 0.0f : a->x[i];
	h = DatumGetUInt64(hash_any_extended((unsigned char *) vals,
										 sizeof(float) * a->dim, seed));
	pfree(vals);
	return h;
}

Datum
vector_hash(PG_FUNCTION_ARGS)
{
	PG_RETURN_UINT32((uint32) vector_hash_internal(PG_GETARG_VECTOR_P(0), 0));
}

Datum
vector_hash_extended(PG_FUNCTION_ARGS)
{
	PG_RETURN_UINT64(vector_hash_internal(PG_GETARG_VECTOR_P(0),
										  PG_GETARG_INT64(1)));
}

/* ---------- avg(vector): state is float8[] {count, sum_1 .. sum_n} ---------- */

static float8 *
accum_state_values(ArrayType *state, int *n)
{
	if (ARR_NDIM(state) != 1 || ARR_HASNULL(state) ||
		ARR_ELEMTYPE(state) != FLOAT8OID)
		elog(ERROR, "vector_accum: expected a float8[] state without nulls");
	*n = ARR_DIMS(state)[0];
	return (float8 *) ARR_DATA_PTR(state);
}

static ArrayType *
make_accum_state(const float8 *values, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * n);

	for (int i = 0; i < n; i++)
		d[i] = Float8GetDatum(values[i]);
	return construct_array(d, n, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL,
						   TYPALIGN_DOUBLE);
}

Datum
vector_accum(PG_FUNCTION_ARGS)
{
	ArrayType  *state = PG_GETARG_ARRAYTYPE_P(0);
	Vector	   *v = PG_GETARG_VECTOR_P(1);
	int			n;
	float8	   *vals = accum_state_values(state, &n);
	float8	   *next;

	if (n == 1)					/* the initial state {0} */
	{
		next = palloc0(sizeof(float8) * (v->dim + 1));
		n = v->dim + 1;
	}
	else
	{
		if (n - 1 != v->dim)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("different vector dimensions %d and %d", n - 1, v->dim)));
		next = palloc(sizeof(float8) * n);
		memcpy(next, vals, sizeof(float8) * n);
	}
	next[0] = vals[0] + 1;
	for (int i = 0; i < v->dim; i++)
		next[i + 1] += v->x[i];
	PG_RETURN_ARRAYTYPE_P(make_accum_state(next, n));
}

Datum
vector_combine(PG_FUNCTION_ARGS)
{
	ArrayType  *s1 = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *s2 = PG_GETARG_ARRAYTYPE_P(1);
	int			n1,
				n2;
	float8	   *v1 = accum_state_values(s1, &n1);
	float8	   *v2 = accum_state_values(s2, &n2);
	float8	   *next;

	if (n1 == 1)
		PG_RETURN_ARRAYTYPE_P(make_accum_state(v2, n2));
	if (n2 == 1)
		PG_RETURN_ARRAYTYPE_P(make_accum_state(v1, n1));
	if (n1 != n2)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different vector dimensions %d and %d", n1 - 1, n2 - 1)));
	next = palloc(sizeof(float8) * n1);
	for (int i = 0; i < n1; i++)
		next[i] = v1[i] + v2[i];
	PG_RETURN_ARRAYTYPE_P(make_accum_state(next, n1));
}

Datum
vector_avg(PG_FUNCTION_ARGS)
{
	ArrayType  *state = PG_GETARG_ARRAYTYPE_P(0);
	int			n;
	float8	   *vals = accum_state_values(state, &n);
	Vector	   *result;

	if (vals[0] == 0)
		PG_RETURN_NULL();
	result = InitVector(n - 1);
	for (int i = 1; i < n; i++)
		result->x[i - 1] = vals[i] / vals[0];
	check_overflow(result);
	PG_RETURN_VECTOR_P(result);
}

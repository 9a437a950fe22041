/*
 * vector.c
 *		The `vector` type: text and binary I/O, typmod, casts and checks.
 *
 * The text form is '[1,2.5,-3e-2]' and the binary form is pgvector's wire
 * format, so clients written for pgvector work unchanged.  Arithmetic,
 * distances and aggregates live in vector_ops.c.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"

#include "vector.h"

PG_FUNCTION_INFO_V1(vector_in);
PG_FUNCTION_INFO_V1(vector_out);
PG_FUNCTION_INFO_V1(vector_typmod_in);
PG_FUNCTION_INFO_V1(vector_typmod_out);
PG_FUNCTION_INFO_V1(vector_recv);
PG_FUNCTION_INFO_V1(vector_send);
PG_FUNCTION_INFO_V1(vector);
PG_FUNCTION_INFO_V1(array_to_vector);
PG_FUNCTION_INFO_V1(vector_to_float4);
PG_FUNCTION_INFO_V1(vector_to_float8);
PG_FUNCTION_INFO_V1(vector_to_int4);
PG_FUNCTION_INFO_V1(vector_to_numeric);

Vector *
InitVector(int dim)
{
	Vector	   *v = (Vector *) palloc0(VECTOR_SIZE(dim));

	SET_VARSIZE(v, VECTOR_SIZE(dim));
	v->dim = dim;
	return v;
}

void
CheckVectorDim(int dim)
{
	if (dim < 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector must have at least 1 dimension")));
	if (dim > VECTOR_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("vector cannot have more than %d dimensions",
						VECTOR_MAX_DIM)));
}

void
CheckVectorDims(const Vector *a, const Vector *b)
{
	if (a->dim != b->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different vector dimensions %d and %d", a->dim, b->dim)));
}

void
CheckVectorTypmod(int typmod, int dim)
{
	if (typmod != -1 && typmod != dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %d dimensions, not %d", typmod, dim)));
}

void
CheckVectorElement(float value)
{
	if (isnan(value))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("NaN not allowed in vector")));
	if (isinf(value))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("infinite value not allowed in vector")));
}

static inline bool
is_vector_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static inline char *
skip_spaces(char *p)
{
	while (is_vector_space(*p))
		p++;
	return p;
}

static void
report_malformed(const char *lit, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type vector: \"%s\"", lit),
			 errdetail("%s", detail)));
}

/* Powers of ten a double holds exactly (5^22 < 2^53). */
static const double exact_pow10[] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

/*
 * The common case of parse_element without strtof, which took about a third
 * of the time a 100-d vector's text took to read: a plain decimal (sign,
 * digits, point, digits, exponent) followed by a delimiter, of at most 15
 * significant digits and a power of ten up to 22.  Then w * 10^e (or
 * w / 10^-e) is one correctly rounded double operation on exact operands
 * (Clinger's fast path), and rounding that double to float gives strtof's
 * float unless the double fell exactly halfway between two floats, which
 * a double rounding could have put there: that case, and everything else
 * (more digits, hex, inf/nan, anything near the ends of float's range)
 * returns false, and strtof decides.
 */
static bool
parse_plain_decimal(const char *p, float *result, const char **endp)
{
	bool		negative = false;
	uint64		w = 0;
	int			sig = 0,
				scale = 0,
				exp10 = 0;
	bool		any = false;
	double		d;
	float		f;

	if (*p == '-' || *p == '+')
		negative = *p++ == '-';
	for (; *p >= '0' && *p <= '9'; p++, any = true)
	{
		if (w == 0 && *p == '0')
			continue;
		if (++sig > 15)
			return false;
		w = w * 10 + (*p - '0');
	}
	if (*p == '.')
	{
		for (p++; *p >= '0' && *p <= '9'; p++, any = true)
		{
			if (w == 0 && *p == '0')
			{
				scale++;
				continue;
			}
			if (++sig > 15)
				return false;
			w = w * 10 + (*p - '0');
			scale++;
		}
	}
	if (!any)
		return false;
	if (*p == 'e' || *p == 'E')
	{
		bool		eneg = false;
		int			digits = 0;

		p++;
		if (*p == '-' || *p == '+')
			eneg = *p++ == '-';
		for (; *p >= '0' && *p <= '9'; p++)
		{
			if (++digits > 3)
				return false;
			exp10 = exp10 * 10 + (*p - '0');
		}
		if (digits == 0)
			return false;
		if (eneg)
			exp10 = -exp10;
	}
	if (*p != ',' && *p != ']' && !is_vector_space(*p))
		return false;
	exp10 -= scale;
	if (w == 0)
		d = 0;
	else if (exp10 < -22 || exp10 > 22)
		return false;
	else
		d = exp10 >= 0 ? (double) w * exact_pow10[exp10] : (double) w / exact_pow10[-exp10];
	if (d != 0 && (d < FLT_MIN || d > FLT_MAX))
		return false;
	f = (float) d;
	if ((double) f != d)
	{
		float		other = nextafterf(f, d > f ? FLT_MAX : 0);

		/* both floats have 24 bits: their midpoint is exact in a double */
		if (d == ((double) f + (double) other) / 2)
			return false;
	}
	*result = negative ? -f : f;
	*endp = p;
	return true;
}

/*
 * Parse one element at *pp, advancing past it.  strtof accepts "nan" and
 * "inf", which CheckVectorElement then rejects with its own message; an
 * ERANGE overflow is an out-of-range error, an underflow is kept as the
 * denormal or zero strtof returned.
 */
static float
parse_element(char **pp, const char *lit)
{
	char	   *end;
	float		val;

	if (parse_plain_decimal(*pp, &val, (const char **) &end))
	{
		*pp = end;
		return val;
	}
	errno = 0;
	val = strtof(*pp, &end);
	if (end == *pp)
		report_malformed(lit, "Expected a number.");
	if (errno == ERANGE && isinf(val))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("\"%.*s\" is out of range for type vector",
						(int) (end - *pp), *pp)));
	CheckVectorElement(val);
	*pp = end;
	return val;
}

/*
 * vector_in: '[x1, x2, ...]' with optional white space around the
 * brackets, numbers and commas.
 */
Datum
vector_in(PG_FUNCTION_ARGS)
{
	char	   *lit = PG_GETARG_CSTRING(0);
	int32		typmod = PG_GETARG_INT32(2);
	char	   *p = skip_spaces(lit);
	float	   *values;
	int			dim = 0;
	Vector	   *result;

	if (*p != '[')
		report_malformed(lit, "Vector contents must start with \"[\".");
	p = skip_spaces(p + 1);
	if (*p == ']')
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector must have at least 1 dimension")));

	values = palloc(sizeof(float) * (VECTOR_MAX_DIM + 1));
	for (;;)
	{
		if (dim > VECTOR_MAX_DIM - 1)
			CheckVectorDim(dim + 1);
		values[dim++] = parse_element(&p, lit);
		p = skip_spaces(p);
		if (*p == ',')
			p = skip_spaces(p + 1);
		else if (*p == ']')
			break;
		else
			report_malformed(lit, "Expected \",\" or \"]\" after a number.");
	}
	p = skip_spaces(p + 1);
	if (*p != '\0')
		report_malformed(lit, "Junk after closing right bracket.");

	CheckVectorTypmod(typmod, dim);
	result = InitVector(dim);
	memcpy(result->x, values, sizeof(float) * dim);
	pfree(values);
	PG_RETURN_VECTOR_P(result);
}

/* Each float prints in its shortest form that reads back to the same bits. */
Datum
vector_out(PG_FUNCTION_ARGS)
{
	Vector	   *v = PG_GETARG_VECTOR_P(0);
	char	   *buf = palloc(v->dim * (FLOAT_SHORTEST_DECIMAL_LEN + 1) + 2);
	char	   *p = buf;

	*p++ = '[';
	for (int i = 0; i < v->dim; i++)
	{
		if (i > 0)
			*p++ = ',';
		p += float_to_shortest_decimal_bufn(v->x[i], p);
	}
	*p++ = ']';
	*p = '\0';
	PG_FREE_IF_COPY(v, 0);
	PG_RETURN_CSTRING(buf);
}

Datum
vector_typmod_in(PG_FUNCTION_ARGS)
{
	ArrayType  *ta = PG_GETARG_ARRAYTYPE_P(0);
	int32	   *tl;
	int			n;

	tl = ArrayGetIntegerTypmods(ta, &n);
	if (n != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid type modifier"),
				 errdetail("vector takes exactly one modifier, its dimensions.")));
	if (*tl < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dimensions for type vector must be at least 1")));
	if (*tl > VECTOR_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dimensions for type vector cannot exceed %d",
						VECTOR_MAX_DIM)));
	PG_RETURN_INT32(*tl);
}

Datum
vector_typmod_out(PG_FUNCTION_ARGS)
{
	int32		typmod = PG_GETARG_INT32(0);

	if (typmod < 0)
		PG_RETURN_CSTRING(pstrdup(""));
	PG_RETURN_CSTRING(psprintf("(%d)", typmod));
}

/* Wire format: int16 dim, int16 zero, dim float4, all in network order. */
Datum
vector_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int32		typmod = PG_GETARG_INT32(2);
	int16		dim;
	int16		unused;
	Vector	   *result;

	if (buf->len - buf->cursor < 2 * (int) sizeof(int16))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary vector: %d bytes, shorter than its header",
						buf->len - buf->cursor)));
	dim = pq_getmsgint(buf, sizeof(int16));
	unused = pq_getmsgint(buf, sizeof(int16));

	CheckVectorDim(dim);
	CheckVectorTypmod(typmod, dim);
	if (unused != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary vector: reserved field is %d, expected 0",
						unused)));
	if (buf->len - buf->cursor != (int) sizeof(float) * dim)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary vector: %d bytes of values for %d dimensions",
						buf->len - buf->cursor, dim)));

	result = InitVector(dim);
	for (int i = 0; i < dim; i++)
	{
		result->x[i] = pq_getmsgfloat4(buf);
		CheckVectorElement(result->x[i]);
	}
	PG_RETURN_VECTOR_P(result);
}

Datum
vector_send(PG_FUNCTION_ARGS)
{
	Vector	   *v = PG_GETARG_VECTOR_P(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint(&buf, v->dim, sizeof(int16));
	pq_sendint(&buf, 0, sizeof(int16));
	for (int i = 0; i < v->dim; i++)
		pq_sendfloat4(&buf, v->x[i]);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* Length coercion vector -> vector(n): checks, never truncates or pads. */
Datum
vector(PG_FUNCTION_ARGS)
{
	Vector	   *v = PG_GETARG_VECTOR_P(0);
	int32		typmod = PG_GETARG_INT32(1);

	CheckVectorTypmod(typmod, v->dim);
	PG_RETURN_VECTOR_P(v);
}

/* Convert one array element (of the given type) to a checked float4. */
static float
element_to_float(Datum d, Oid elemtype)
{
	double		val;

	switch (elemtype)
	{
		case INT4OID:
			val = DatumGetInt32(d);
			break;
		case FLOAT4OID:
			val = DatumGetFloat4(d);
			break;
		case FLOAT8OID:
			val = DatumGetFloat8(d);
			break;
		case NUMERICOID:
			val = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow, d));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("unsupported array element type %s",
							format_type_be(elemtype))));
	}
	if (isnan(val))
		CheckVectorElement(NAN);
	if (isinf(val) && elemtype != NUMERICOID)
		CheckVectorElement((float) val);
	if (fabs(val) > FLT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("value %g is out of range for type vector", val)));
	return (float) val;
}

/* Casts from integer[], real[], double precision[] and numeric[]. */
Datum
array_to_vector(PG_FUNCTION_ARGS)
{
	ArrayType  *array = PG_GETARG_ARRAYTYPE_P(0);
	int32		typmod = PG_GETARG_INT32(1);
	Oid			elemtype = ARR_ELEMTYPE(array);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	Vector	   *result;

	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("array must be 1-D")));
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(array, elemtype, typlen, typbyval, typalign,
					  &elems, &nulls, &n);
	CheckVectorDim(n);
	CheckVectorTypmod(typmod, n);

	result = InitVector(n);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("array must not contain nulls"),
					 errdetail("Element %d is NULL.", i + 1)));
		result->x[i] = element_to_float(elems[i], elemtype);
	}
	PG_RETURN_VECTOR_P(result);
}

static ArrayType *
vector_to_array(Vector *v, Oid elemtype, Datum (*convert) (float))
{
	Datum	   *d = palloc(sizeof(Datum) * v->dim);
	int16		typlen;
	bool		typbyval;
	char		typalign;

	for (int i = 0; i < v->dim; i++)
		d[i] = convert(v->x[i]);
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return construct_array(d, v->dim, elemtype, typlen, typbyval, typalign);
}

static Datum
float_to_float4_datum(float f)
{
	return Float4GetDatum(f);
}

static Datum
float_to_float8_datum(float f)
{
	return Float8GetDatum((double) f);
}

static Datum
float_to_int4_datum(float f)
{
	float		r = rintf(f);

	if (r < (float) PG_INT32_MIN || r >= -((float) PG_INT32_MIN))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("vector element %g is out of range for type integer", f)));
	return Int32GetDatum((int32) r);
}

static Datum
float_to_numeric_datum(float f)
{
	return DirectFunctionCall1(float4_numeric, Float4GetDatum(f));
}

Datum
vector_to_float4(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(vector_to_array(PG_GETARG_VECTOR_P(0), FLOAT4OID,
										  float_to_float4_datum));
}

Datum
vector_to_float8(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(vector_to_array(PG_GETARG_VECTOR_P(0), FLOAT8OID,
										  float_to_float8_datum));
}

Datum
vector_to_int4(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(vector_to_array(PG_GETARG_VECTOR_P(0), INT4OID,
										  float_to_int4_datum));
}

Datum
vector_to_numeric(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(vector_to_array(PG_GETARG_VECTOR_P(0), NUMERICOID,
										  float_to_numeric_datum));
}

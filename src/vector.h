/*
 * vector.h
 *		The in-memory and on-disk form of the `vector` type.
 *
 * A vector is a varlena holding a dimension count and that many float4
 * values.  The layout matches the wire format used by pgvector's send/recv
 * (int16 dimensions, int16 reserved zero, float4 values) so the binary I/O
 * functions are a byte-order swap away from the stored form.
 */
#ifndef AGENTMEM_VECTOR_H
#define AGENTMEM_VECTOR_H

#include "postgres.h"
#include "fmgr.h"

#define VECTOR_MAX_DIM 16000

typedef struct Vector
{
	int32		vl_len_;		/* varlena header (do not touch directly) */
	int16		dim;			/* number of dimensions */
	int16		unused;			/* reserved, always zero */
	float		x[FLEXIBLE_ARRAY_MEMBER];
} Vector;

#define VECTOR_SIZE(_dim)		(offsetof(Vector, x) + sizeof(float) * (_dim))
#define DatumGetVector(x)		((Vector *) PG_DETOAST_DATUM(x))
#define PG_GETARG_VECTOR_P(x)	DatumGetVector(PG_GETARG_DATUM(x))
#define PG_RETURN_VECTOR_P(x)	PG_RETURN_POINTER(x)

extern Vector *InitVector(int dim);
extern void CheckVectorDim(int dim);
extern void CheckVectorDims(const Vector *a, const Vector *b);
extern void CheckVectorTypmod(int typmod, int dim);
extern void CheckVectorElement(float value);

#endif							/* AGENTMEM_VECTOR_H */

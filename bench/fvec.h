/*
 * fvec.h
 *		Tiny header-only reader/writer for the benchmark's binary files.
 *
 * Two formats, both little-endian regardless of the host:
 *
 *	.fvec	"AGMV" | uint32 n | uint32 dim | n*dim float32
 *	.i32	"AGGT" | uint32 nq | uint32 k  | nq*k int32 (ground-truth ids)
 *
 * Plus ".words" files: one word per line, '\n'-terminated, same order as
 * the vectors of the .fvec file with the same stem.
 *
 * Everything is static so each program includes it once with no library.
 * Errors print to stderr and exit(1): these are command-line tools.
 */
#ifndef AGENTMEM_BENCH_FVEC_H
#define AGENTMEM_BENCH_FVEC_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FVEC_MAGIC "AGMV"
#define GT_MAGIC   "AGGT"

static inline void
fv_die(const char *fmt, const char *arg)
{
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

static inline void *
fv_xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	if (p == NULL)
		fv_die("out of memory%s", "");
	return p;
}

static inline int
fv_host_is_le(void)
{
	const uint32_t one = 1;

	return *(const unsigned char *) &one == 1;
}

static inline uint32_t
fv_get_le32(const unsigned char *p)
{
	return (uint32_t) p[0] | ((uint32_t) p[1] << 8) |
		((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

static inline void
fv_put_le32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char) v;
	p[1] = (unsigned char) (v >> 8);
	p[2] = (unsigned char) (v >> 16);
	p[3] = (unsigned char) (v >> 24);
}

/* Swap 32-bit words in place when the host is big-endian. */
static inline void
fv_fix_endian32(void *buf, size_t count)
{
	unsigned char *p = buf;
	size_t		i;

	if (fv_host_is_le())
		return;
	for (i = 0; i < count; i++, p += 4)
	{
		unsigned char t0 = p[0],
					t1 = p[1];

		p[0] = p[3];
		p[1] = p[2];
		p[2] = t1;
		p[3] = t0;
	}
}

static inline void
fv_write_header(FILE *f, const char *path, const char *magic,
				uint32_t a, uint32_t b)
{
	unsigned char h[12];

	memcpy(h, magic, 4);
	fv_put_le32(h + 4, a);
	fv_put_le32(h + 8, b);
	if (fwrite(h, 1, 12, f) != 12)
		fv_die("write error on %s", path);
}

/* Write count 32-bit values (float or int32) as little-endian. */
static inline void
fv_write_words32(FILE *f, const char *path, const void *data, size_t count)
{
	if (fv_host_is_le())
	{
		if (count && fwrite(data, 4, count, f) != count)
			fv_die("write error on %s", path);
	}
	else
	{
		unsigned char buf[4096];
		const unsigned char *src = data;

		while (count > 0)
		{
			size_t		c = count < sizeof(buf) / 4 ? count : sizeof(buf) / 4;

			memcpy(buf, src, c * 4);
			fv_fix_endian32(buf, c);
			if (fwrite(buf, 4, c, f) != c)
				fv_die("write error on %s", path);
			src += c * 4;
			count -= c;
		}
	}
}

static inline FILE *
fv_open_write(const char *path)
{
	FILE	   *f = fopen(path, "wb");

	if (f == NULL)
	{
		fprintf(stderr, "cannot create %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return f;
}

static inline void
fv_close(FILE *f, const char *path)
{
	if (fflush(f) != 0 || ferror(f) || fclose(f) != 0)
		fv_die("write error on %s", path);
}

/* Write a whole .fvec file. */
static inline void
fvec_write(const char *path, const float *v, uint32_t n, uint32_t dim)
{
	FILE	   *f = fv_open_write(path);

	fv_write_header(f, path, FVEC_MAGIC, n, dim);
	fv_write_words32(f, path, v, (size_t) n * dim);
	fv_close(f, path);
}

/*
 * Read a .fvec file.  If limit > 0, read only the first min(limit, n)
 * vectors.  Returns the vectors (malloc'd, n*dim floats) and sets *n, *dim.
 */
static inline float *
fvec_read(const char *path, uint32_t limit, uint32_t *n_out, uint32_t *dim_out)
{
	FILE	   *f = fopen(path, "rb");
	unsigned char h[12];
	uint32_t	n,
				dim;
	size_t		count;
	float	   *v;

	if (f == NULL)
	{
		fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
		exit(1);
	}
	if (fread(h, 1, 12, f) != 12 || memcmp(h, FVEC_MAGIC, 4) != 0)
		fv_die("%s: not an AGMV .fvec file", path);
	n = fv_get_le32(h + 4);
	dim = fv_get_le32(h + 8);
	if (dim == 0 || dim > 65536)
		fv_die("%s: bad dimension in header", path);
	if (limit > 0 && limit < n)
		n = limit;
	count = (size_t) n * dim;
	v = fv_xmalloc(count * sizeof(float));
	if (fread(v, sizeof(float), count, f) != count)
		fv_die("%s: file is shorter than its header says", path);
	fclose(f);
	fv_fix_endian32(v, count);
	*n_out = n;
	*dim_out = dim;
	return v;
}

/* Write a ground-truth .i32 file. */
static inline void
gt_write(const char *path, const int32_t *ids, uint32_t nq, uint32_t k)
{
	FILE	   *f = fv_open_write(path);

	fv_write_header(f, path, GT_MAGIC, nq, k);
	fv_write_words32(f, path, ids, (size_t) nq * k);
	fv_close(f, path);
}

/* Read a ground-truth .i32 file; returns nq*k ids and sets *nq, *k. */
static inline int32_t *
gt_read(const char *path, uint32_t *nq_out, uint32_t *k_out)
{
	FILE	   *f = fopen(path, "rb");
	unsigned char h[12];
	size_t		count;
	int32_t    *ids;

	if (f == NULL)
	{
		fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
		exit(1);
	}
	if (fread(h, 1, 12, f) != 12 || memcmp(h, GT_MAGIC, 4) != 0)
		fv_die("%s: not an AGGT ground-truth file", path);
	*nq_out = fv_get_le32(h + 4);
	*k_out = fv_get_le32(h + 8);
	count = (size_t) *nq_out * *k_out;
	ids = fv_xmalloc(count * sizeof(int32_t));
	if (fread(ids, sizeof(int32_t), count, f) != count)
		fv_die("%s: file is shorter than its header says", path);
	fclose(f);
	fv_fix_endian32(ids, count);
	return ids;
}

/*
 * Read a .words file: returns an array of n NUL-terminated strings pointing
 * into one buffer (both malloc'd; free words[0]'s buffer via *buf_out).
 */
static inline char **
words_read(const char *path, uint32_t *n_out, char **buf_out)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	char	  **words;
	long		size;
	size_t		i,
				n = 0,
				w = 0;

	if (f == NULL)
	{
		fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
		exit(1);
	}
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
		fseek(f, 0, SEEK_SET) != 0)
		fv_die("cannot size %s", path);
	buf = fv_xmalloc((size_t) size + 1);
	if (fread(buf, 1, (size_t) size, f) != (size_t) size)
		fv_die("read error on %s", path);
	fclose(f);
	buf[size] = '\0';
	for (i = 0; i < (size_t) size; i++)
		if (buf[i] == '\n')
			n++;
	if (size > 0 && buf[size - 1] != '\n')
		n++;
	words = fv_xmalloc((n ? n : 1) * sizeof(char *));
	if (size > 0)
		words[w++] = buf;
	for (i = 0; i < (size_t) size; i++)
	{
		if (buf[i] == '\n')
		{
			buf[i] = '\0';
			if (i + 1 < (size_t) size)
				words[w++] = buf + i + 1;
		}
	}
	*n_out = (uint32_t) n;
	*buf_out = buf;
	return words;
}

#endif							/* AGENTMEM_BENCH_FVEC_H */

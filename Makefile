# agentmem: PGXS build.  `make test` and `make demo` set up everything on a
# fresh machine; `make installcheck` runs the regression tests against a
# server you already run.

EXTENSION = agentmem
MODULE_big = agentmem
DATA = agentmem--0.1.0.sql
SRCS = $(wildcard src/*.c)
OBJS = $(SRCS:.c=.o)
HEADERS = $(wildcard src/*.h)

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --inputdir=. --load-extension=agentmem

# -Wextra on top of PostgreSQL's own warning set; the three exclusions are
# idioms of PostgreSQL's headers (unused fcinfo, int/uint compares, partial
# struct initialisers).  WERROR=1 (set by `make test`) turns them into errors.
PG_CFLAGS = -Wextra -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers
ifeq ($(WERROR),1)
PG_CFLAGS += -Werror
endif

PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(OBJS): $(HEADERS)

.PHONY: test demo bench
test:
	bash test/run.sh

demo:
	bash bench/demo.sh

bench:
	bash bench/run.sh

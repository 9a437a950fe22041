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
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

# On a fresh machine PGXS is not installed yet: `make test` and `make demo`
# install it themselves, so they must work without it.
ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
$(OBJS): $(HEADERS)
else
all install installcheck:
	@echo "PostgreSQL 15 server headers not found: run 'make test' (installs them as root)" >&2
	@echo "or: sudo apt-get install -y postgresql-15 postgresql-server-dev-15" >&2
	@exit 1
endif

.PHONY: test demo bench
test:
	bash test/run.sh

demo:
	bash bench/demo.sh

bench:
	bash bench/run.sh

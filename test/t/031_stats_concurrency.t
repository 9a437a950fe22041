# 031_stats_concurrency.t: many backends record at once and no sample is
# lost; connection churn is seen.
#
# pgbench runs a script of two statements (a primary-key SELECT and an
# hnsw nearest-neighbour SELECT) from 8 clients while another pgbench
# reads the statistics views in a loop.  Afterwards the per-statement
# calls, the 'all statements' calls and the hnsw_scan calls equal exactly
# what pgbench reports it ran.  Then pgbench -C (a new connection per
# transaction) must make agentmem.connections advise a pooler, while a few
# long sessions must not.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('stats_concurrency');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'agentmem'
agentmem.track = all
max_connections = 40
});
$node->start;

my $dir = PostgreSQL::Test::Utils::tempdir('pgbench');

$node->safe_psql('postgres', q{
	CREATE EXTENSION agentmem;
	CREATE TABLE items (id int PRIMARY KEY, v vector(8));
	INSERT INTO items SELECT i, ARRAY(SELECT ((i * 7 + j * 13) % 101)::real FROM generate_series(1, 8) j)::vector
	  FROM generate_series(1, 2000) i;
	CREATE INDEX ON items USING hnsw (v vector_l2_ops);
	ANALYZE items;
	ALTER DATABASE postgres SET enable_seqscan = off;
});
command_ok([ 'pgbench', '-i', '-s', '1', '-q', '-h', $node->host, '-p', $node->port, 'postgres' ],
	'pgbench -i');

# run pgbench; returns the number of transactions it processed
sub pgbench
{
	my ($name, @args) = @_;
	my ($out, $err);
	my $ok = IPC::Run::run(
		[ 'pgbench', '-n', '-h', $node->host, '-p', $node->port, @args, 'postgres' ],
		'>', \$out, '2>', \$err);
	ok($ok, "pgbench $name") or diag($out . $err);
	my ($done) = $out =~ /number of transactions actually processed: (\d+)/;
	return $done // -1;
}

sub write_script
{
	my ($name, $body) = @_;
	my $f = "$dir/$name.sql";
	open my $fh, '>', $f or die "$f: $!";
	print $fh $body;
	close $fh;
	return $f;
}

# The server computes no query identifiers (compute_query_id = auto, no
# pg_stat_statements), so statements are keyed by agentmem's fingerprint of
# their text, the same for every constant pgbench puts in.
sub qid
{
	my ($sql) = @_;
	return $node->safe_psql('postgres', "SELECT agentmem.statement_id('$sql')");
}

my $work = write_script('work', q{\set aid random(1, 100000)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
\set q random(1, 2000)
SELECT id FROM items ORDER BY v <-> (SELECT v FROM items WHERE id = :q) LIMIT 5;
});
my $read = write_script('read', q{SELECT sum(calls) FROM agentmem.latency;
SELECT count(*) FROM agentmem.statement_latency;
});

like($node->safe_psql('postgres',
		'EXPLAIN SELECT id FROM items ORDER BY v <-> (SELECT v FROM items WHERE id = 1) LIMIT 5'),
	qr/Index Scan using items_v_idx/, 'the nearest-neighbour query uses the hnsw index');

my $qid_pk = qid('SELECT abalance FROM pgbench_accounts WHERE aid = 1');
my $qid_nn = qid('SELECT id FROM items ORDER BY v <-> (SELECT v FROM items WHERE id = 1) LIMIT 5');
ok($qid_pk && $qid_nn && $qid_pk ne $qid_nn, 'the two statements have distinct fingerprints');
unlike($node->safe_psql('postgres', 'EXPLAIN (VERBOSE) SELECT 1'), qr/Query Identifier/,
	'the server computes no query identifiers of its own');

# ------------------------------------------------ concurrent recording

$node->safe_psql('postgres', 'SELECT agentmem.latency_reset()');

my ($rout, $rerr) = ('', '');
my $reader = IPC::Run::start(
	[ 'pgbench', '-n', '-h', $node->host, '-p', $node->port, '-c', '1', '-T', '4',
	  '-f', $read, 'postgres' ],
	'>', \$rout, '2>', \$rerr);
my $tx = pgbench('8 clients', '-c', '8', '-j', '2', '-t', '400', '-f', $work);
$reader->finish;
my ($read_tx) = $rout =~ /number of transactions actually processed: (\d+)/;
is($tx, 3200, 'pgbench ran 3200 transactions of 2 statements');
ok(defined $read_tx && $read_tx > 0, "a reader queried the views meanwhile ($read_tx times)")
  or diag($rout . $rerr);
$read_tx //= 0;

my $stats = $node->safe_psql('postgres', qq{
	SELECT (SELECT calls FROM agentmem.statement_latency WHERE queryid = $qid_pk),
		   (SELECT calls FROM agentmem.statement_latency WHERE queryid = $qid_nn),
		   (SELECT calls FROM agentmem.latency WHERE operation = 'hnsw_scan'),
		   (SELECT calls FROM agentmem.latency WHERE operation = 'all statements')});
my ($pk, $nn, $scans, $all) = split /\|/, $stats;
is($pk, $tx, 'every primary-key SELECT was counted');
is($nn, $tx, 'every nearest-neighbour SELECT was counted');
is($scans, $tx, 'every hnsw scan was counted');
is($all, 1 + 2 * $tx + 2 * $read_tx,
	"'all statements' = the reset + 2 per transaction of both pgbench runs");

# histograms are consistent: buckets add up to calls for every operation
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM agentmem.latency l
	 WHERE l.calls <> coalesce((SELECT sum(count) FROM agentmem.latency_histogram(l.operation)), 0)
	   AND l.operation <> 'all statements'}),
	'0', 'the histogram of every agentmem operation adds up to its calls');
is($node->safe_psql('postgres', q{
	SELECT bool_and(p50_ms <= p90_ms AND p90_ms <= p95_ms AND p95_ms <= p99_ms
				AND p99_ms <= p999_ms AND p999_ms <= max_ms)
	  FROM agentmem.statement_latency}),
	't', 'percentiles are ordered for every statement');

# each pgbench client ran its statements back to back: N+1 bursts
my $n1 = $node->safe_psql('postgres',
	"SELECT occurrences, max_repeats FROM agentmem.n_plus_one WHERE queryid = $qid_pk");
my ($occ, $maxrep) = split /\|/, $n1;
ok(defined $occ && $occ >= 1 && $maxrep >= 5,
	"pgbench's back-to-back SELECTs are seen as N+1 bursts ($n1)");

# ------------------------------------------------ connection churn

$node->safe_psql('postgres', 'SELECT agentmem.latency_reset()');
my $select = write_script('select', q{\set aid random(1, 100000)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
});
my $ctx = pgbench('-C, a connection per transaction', '-C', '-c', '4', '-j', '2', '-t', '50',
	'-f', $select);
is($ctx, 200, 'pgbench -C ran 200 transactions');
# the server records a session's end after the client has left
$node->poll_query_until('postgres',
	'SELECT sessions_ended >= 200 FROM agentmem.connections')
  or diag('sessions did not end');
my ($started, $ended, $rate, $p50, $p99, $short, $txp50, $advice) = split /\|/,
  $node->safe_psql('postgres', 'SELECT * FROM agentmem.connections');
cmp_ok($started, '>=', 200, "sessions started counts every connection ($started)");
cmp_ok($ended, '>=', 200, "sessions ended too ($ended)");
cmp_ok($rate, '>', 3, "sessions per second over the last minute ($rate)");
ok($p50 > 0 && $p50 <= $p99 && $p99 < 10000, "lifetime p50 $p50 ms <= p99 $p99 ms");
cmp_ok($short, '>', 0.9, "nearly all sessions lasted under 1 s ($short)");
is($txp50, '1', 'median transactions per session is 1');
like($advice, qr/high connection churn.*PgBouncer/, 'the advice recommends a pooler');
note($advice);

# a few long sessions: no pooler advice
$node->safe_psql('postgres', 'SELECT agentmem.latency_reset()');
my $long = write_script('long', "SELECT pg_sleep(1.1);\n");
is(pgbench('12 sessions of 1.1 s', '-c', '12', '-j', '2', '-t', '1', '-f', $long), 12,
	'12 long sessions ran');
$node->poll_query_until('postgres', 'SELECT sessions_ended >= 12 FROM agentmem.connections')
  or diag('sessions did not end');
($started, $ended, $rate, $p50, $p99, $short, $txp50, $advice) = split /\|/,
  $node->safe_psql('postgres', 'SELECT * FROM agentmem.connections');
cmp_ok($p50, '>=', 1100 * 0.98,
	"lifetime p50 is at least the sleep, within the histogram's 2% ($p50 ms)");
cmp_ok($short, '<', 0.5, "few sessions under 1 s ($short)");
like($advice, qr/churn is low/, 'long-lived sessions get no pooler advice');
note($advice);

is($node->safe_psql('postgres', 'SELECT 1'), '1', 'server alive at the end');
$node->stop;
done_testing();

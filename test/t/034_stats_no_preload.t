# 034_stats_no_preload.t: agentmem without shared_preload_libraries.
#
# The statistics need shared memory, so every statistics view and function
# raises object_not_in_prerequisite_state (55000) with a hint naming
# shared_preload_libraries; the type, the index and everything else work.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('no_preload');
$node->init;
# autovacuum would clear the mark of the batch cut short below by itself
$node->append_conf('postgresql.conf', 'autovacuum = off');
$node->start;

is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'), '',
	'agentmem is not preloaded');
$node->safe_psql('postgres', q{
	CREATE EXTENSION agentmem;
	CREATE TABLE items (id int PRIMARY KEY, v vector(3));
	INSERT INTO items SELECT i, ARRAY[i % 5, i % 7, i % 11]::real[]::vector FROM generate_series(1, 300) i;
	CREATE INDEX ON items USING hnsw (v vector_l2_ops);
	INSERT INTO items VALUES (301, '[9,9,9]');
});
is( $node->safe_psql(
		'postgres', q{
	SET enable_seqscan = off;
	SELECT id FROM items ORDER BY v <-> '[9,9,9]' LIMIT 1}),
	'301', 'the type, index build, insert and scan work without preloading');
like($node->safe_psql('postgres',
		q{SET enable_seqscan = off; EXPLAIN SELECT id FROM items ORDER BY v <-> '[9,9,9]' LIMIT 1}),
	qr/Index Scan using items_v_idx/, 'through the hnsw index');

is($node->safe_psql('postgres', q{SELECT agentmem.statement_id('SELECT 1') = agentmem.statement_id('select 2')}),
	't', 'statement_id, a pure function of the text, needs no preloading');

# a batch cut short leaves a mark that the next search hands to a
# background worker, which must load the library itself here
$node->safe_psql('postgres', q{SELECT agentmem.create_space('np', 3, 'l2')});
$node->safe_psql('postgres',
	q{SELECT count(*) FROM agentmem.remember('np',
		(SELECT array_agg('row ' || i) FROM generate_series(1, 400) i),
		(SELECT array_agg(ARRAY[i % 5, i % 7, i % 11]::real[]::vector) FROM generate_series(1, 400) i))});
my ($rc, $out, $err) = $node->psql('postgres',
	q{SET hnsw.test_fail_after_page_writes = 15;
	  SELECT count(*) FROM agentmem.remember('np',
		(SELECT array_agg('more ' || i) FROM generate_series(1, 400) i),
		(SELECT array_agg(ARRAY[i % 3, i % 13, i % 4 + 1]::real[]::vector) FROM generate_series(1, 400) i))});
like($err, qr/failing after 15 page writes/, 'a batch failed while writing its lists');
my $np_idx = $node->safe_psql('postgres', q{SELECT agentmem.space_table('np') || '_embedding'});
is($node->safe_psql('postgres', "SELECT string_agg(kind, ',') FROM agentmem.hnsw_check('$np_idx') WHERE kind = 'batch cut short'"),
	'batch cut short', 'and left the mark');
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres',
	"SET enable_seqscan = off; SELECT id FROM " . $node->safe_psql('postgres', q{SELECT agentmem.space_table('np')})
	  . " ORDER BY embedding <-> '[1,2,3]' LIMIT 1");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM agentmem.hnsw_check('$np_idx') WHERE kind = 'batch cut short'"),
	'a search hands the relinking to a background worker, also without preloading');
like(slurp_file($node->logfile, $log_offset), qr/relinking index "\w+_np_embedding" after a batch that ended part-way/,
	'which relinks the index');

my @calls = (
	'SELECT * FROM agentmem.latency',
	'SELECT * FROM agentmem.statement_latency',
	'SELECT * FROM agentmem.n_plus_one',
	'SELECT * FROM agentmem.connections',
	q{SELECT * FROM agentmem.latency_histogram('hnsw_scan')},
	q{SELECT * FROM agentmem.slo_check('hnsw_scan', 1, 10)},
	'SELECT agentmem.latency_reset()',
);
for my $sql (@calls)
{
	my ($out, $err);
	my $rc = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql",
		stdout => \$out, stderr => \$err);
	ok( $rc != 0
		  && $err =~ /ERROR:\s+55000: agentmem statistics are not enabled/
		  && $err =~ /HINT:.*shared_preload_libraries = 'agentmem'.*restart/,
		"$sql: 55000 with a hint to preload agentmem")
	  or diag($err);
}

# the hint is right: preloading makes them work
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'agentmem'");
$node->restart;
is($node->safe_psql('postgres', q{SELECT count(*) FROM agentmem.latency}), '9',
	'after following the hint, agentmem.latency works');
is($node->safe_psql('postgres', q{SET enable_seqscan = off;
	SELECT id FROM items ORDER BY v <-> '[9,9,9]' LIMIT 1;
	SELECT calls FROM agentmem.latency WHERE operation = 'hnsw_scan'}),
	"301\n1", 'and records the hnsw scan');

$node->stop;
done_testing();

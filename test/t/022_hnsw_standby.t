# 022_hnsw_standby.t: hnsw indexes on a streaming standby.
#
# Every change to an hnsw page is WAL-logged (the build logs the whole
# relation at its end, later changes go through GenericXLog), so a standby
# replays exactly the primary's pages and its index scans must return the
# same rows in the same order.  One index exists before the base backup,
# another is built while the standby streams; both then see inserts,
# deletes and VACUUM on the primary.  On the standby agentmem.hnsw_check
# must be clean (it takes a page lock, which recovery allows), and after
# promotion the index takes inserts again.
use strict;
use warnings;

use lib "$ENV{AGENTMEM_TEST}/perl";
use AgentmemHnsw;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $dim = 16;
srand(22);
sub random_vec { return vec_text([ map { rand(2) - 1 } 1 .. $dim ]); }

my $primary = new_node('primary', allows_streaming => 1);
$primary->append_conf('postgresql.conf', 'autovacuum = off');
$primary->reload;

sub insert_rows
{
	my ($from, $to, $each) = @_;
	my @rows = map { "($_, '" . random_vec() . "')" } $from .. $to;
	if ($each)
	{
		# one statement per row: the on-disk insert path, one WAL record set each
		$primary->safe_psql('postgres', join("\n", map { "INSERT INTO t VALUES $_;" } @rows));
	}
	else
	{
		$primary->safe_psql('postgres', 'INSERT INTO t VALUES ' . join(', ', @rows));
	}
}

$primary->safe_psql('postgres', "CREATE TABLE t (id int PRIMARY KEY, v vector($dim))");
insert_rows(1, 1500);
$primary->safe_psql('postgres', 'CREATE INDEX t_l2 ON t USING hnsw (v vector_l2_ops)');

$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;

# built while the standby streams: replayed from the build's WAL
$primary->safe_psql('postgres',
	'CREATE INDEX t_cos ON t USING hnsw (v vector_cosine_ops) WITH (m = 8, ef_construction = 32)');
insert_rows(1501, 1800, 1);
$primary->safe_psql('postgres', 'DELETE FROM t WHERE id % 3 = 0');
$primary->safe_psql('postgres', 'VACUUM t');
insert_rows(1801, 2000, 1);
$primary->safe_psql('postgres', 'UPDATE t SET v = v + v WHERE id % 7 = 0');
$primary->safe_psql('postgres', 'DELETE FROM t WHERE id % 11 = 0');
$primary->safe_psql('postgres', 'VACUUM t');
insert_rows(2001, 2100, 1);
$primary->wait_for_catchup($standby, 'replay');

my @queries = map { random_vec() } 1 .. 20;

# The ids of every query, one line each, under the given settings.
sub answers
{
	my ($node, $op, $settings, $limit) = @_;
	my $sql = "SET enable_seqscan = off; $settings\n";
	$sql .= "SELECT array_agg(id) FROM (SELECT id FROM t ORDER BY v $op '$_' LIMIT $limit) s;\n"
	  for @queries;
	return $node->safe_psql('postgres', $sql);
}

for my $case (
	[ 't_l2',  '<->', '',                                                       10 ],
	[ 't_l2',  '<->', 'SET hnsw.ef_search = 200;',                              100 ],
	[ 't_l2',  '<->', 'SET hnsw.ef_search = 10; SET hnsw.iterative_scan = strict_order;', 60 ],
	[ 't_cos', '<=>', '',                                                       10 ],
	[ 't_cos', '<=>', 'SET hnsw.ef_search = 300; SET hnsw.iterative_scan = relaxed_order;', 500 ])
{
	my ($index, $op, $settings, $limit) = @$case;
	my $what = "$index, LIMIT $limit" . ($settings ? ", $settings" : '');
	like($standby->safe_psql('postgres',
			"SET enable_seqscan = off; $settings EXPLAIN (COSTS OFF) SELECT id FROM t ORDER BY v $op '$queries[0]' LIMIT $limit"),
		qr/Index Scan using $index/, "standby: $what scans the index");
	my $p = answers($primary, $op, $settings, $limit);
	my $s = answers($standby, $op, $settings, $limit);
	my @lines = split /\n/, $p;
	is(scalar @lines, scalar @queries, "primary: $what answers every query");
	is($s, $p, "standby: $what gives the primary's ids in the primary's order");
}

for my $index (qw(t_l2 t_cos))
{
	my $info = 'SELECT elements, deleted, entry_level, pages, m, unreachable, problems '
	  . "FROM agentmem.hnsw_info('$index')";
	is($standby->safe_psql('postgres', $info), $primary->safe_psql('postgres', $info),
		"standby: hnsw_info($index) equals the primary's");
	hnsw_clean($primary, $index, 'primary');
	hnsw_clean($standby, $index, 'standby');
}
is(index_count($standby, 't', 't_l2'), seq_count($standby, 't'),
	'standby: a complete index scan returns every row once');
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't',
	'the checks ran during recovery');

# REINDEX on the primary is replayed too
$primary->safe_psql('postgres', 'REINDEX INDEX t_cos');
$primary->wait_for_catchup($standby, 'replay');
is( answers($standby, '<=>', '', 10), answers($primary, '<=>', '', 10),
	'standby: after REINDEX on the primary, the same answers');
hnsw_clean($standby, 't_cos', 'standby after REINDEX');

# promoted, the standby's indexes take inserts
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'standby was not promoted';
$standby->safe_psql('postgres',
	join("\n", map { "INSERT INTO t VALUES ($_, '" . random_vec() . "');" } 5001 .. 5100));
hnsw_clean($standby, 't_l2',  'promoted standby after inserts');
hnsw_clean($standby, 't_cos', 'promoted standby after inserts');
is(index_count($standby, 't', 't_l2'), seq_count($standby, 't'),
	'promoted standby: a complete index scan returns every row once');

$standby->stop;
$primary->stop;
done_testing();

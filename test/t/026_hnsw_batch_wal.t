# 026_hnsw_batch_wal.t: batched inserts (agentmem.remember) and the WAL.
#
# remember() links its rows into the hnsw graph together and writes each
# changed page back once (hnswbatch.c).  Those page writes must reach a
# streaming standby like any other: after committed and rolled-back
# batches, the standby's index must be clean (hnsw_check) and answer every
# search exactly as the primary's does.  Then the primary is killed with
# SIGKILL right after a batch committed (no checkpoint since, so recovery
# replays the batch from the WAL): after restart the index must be clean
# and find every committed row by its own vector.
use strict;
use warnings;

use lib "$ENV{AGENTMEM_TEST}/perl";
use AgentmemHnsw;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $dim = 16;
srand(26);
sub random_vec { return vec_text([ map { rand(2) - 1 } 1 .. $dim ]); }

# SQL that remembers rows $from .. $to, content "row N"
sub remember_sql
{
	my ($from, $to) = @_;
	my @ids = $from .. $to;
	my $contents = join(', ', map { "'row $_'" } @ids);
	my $vectors = join(', ', map { "'" . random_vec() . "'" } @ids);
	return "SELECT count(*) FROM agentmem.remember('b', ARRAY[$contents], ARRAY[$vectors]::vector[])";
}

my $primary = new_node('primary', allows_streaming => 1);
$primary->append_conf('postgresql.conf', "autovacuum = off\ncheckpoint_timeout = '1h'");
$primary->restart;
$primary->safe_psql('postgres', "SELECT agentmem.create_space('b', $dim, 'l2', m => 8)");
my $t = $primary->safe_psql('postgres', "SELECT agentmem.space_table('b')");
my $idx = "${t}_embedding";
is($primary->safe_psql('postgres', remember_sql(1, 600)), '600', 'a first batch into the empty space');

$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;

is($primary->safe_psql('postgres', remember_sql(601, 1400)), '800', 'a batch while the standby streams');
$primary->safe_psql('postgres', 'BEGIN; ' . remember_sql(1401, 1700) . '; ROLLBACK;');
is($primary->safe_psql('postgres', remember_sql(1701, 1900)), '200', 'a batch after a rolled-back one');
$primary->safe_psql('postgres', "DELETE FROM $t WHERE id % 5 = 0; VACUUM $t;");
is($primary->safe_psql('postgres', remember_sql(1901, 2300)), '400', 'a batch after VACUUM');
$primary->wait_for_catchup($standby);

hnsw_clean($primary, $idx, 'primary');
hnsw_clean($standby, $idx, 'standby');
my $queries = join(' UNION ALL ',
	map { "(SELECT $_ AS q, id FROM $t ORDER BY embedding <-> '" . random_vec() . "' LIMIT 10)" }
	  1 .. 20);
my $search = "SET enable_seqscan = off; SET hnsw.ef_search = 100; $queries";
my $on_primary = $primary->safe_psql('postgres', $search);
is($standby->safe_psql('postgres', $search), $on_primary,
	'20 searches on the standby return what they return on the primary');
like($primary->safe_psql('postgres', "SET enable_seqscan = off; EXPLAIN (COSTS OFF) $queries"),
	qr/Index Scan using/, 'the searches scan the index');

# rows whose own vector, searched through the index, finds them first
my $self = "SET enable_seqscan = off; SET hnsw.ef_search = 100; "
  . "SELECT count(*) FROM $t a WHERE a.id = "
  . "(SELECT b.id FROM $t b ORDER BY b.embedding <-> a.embedding LIMIT 1)";
# the same with a wide search: after a batch cut short the graph holds its
# dead rows' elements, some with lists that lead nowhere much, until VACUUM
# removes them; at ef_search 100 a search may then miss a reachable row
# (1 of 3,181 in one run), at 400 none was missed in any run
(my $self_wide = $self) =~ s/ef_search = 100/ef_search = 400/;
my $rows = $primary->safe_psql('postgres', "SELECT count(*) FROM $t");
my $found = $primary->safe_psql('postgres', $self);
cmp_ok($found, '>=', 0.99 * $rows, "the index finds $found of the $rows rows by their own vector");
is($standby->safe_psql('postgres', $self), $found, 'so does the standby\'s');

# crash right after a committed batch: recovery replays it from the WAL
$standby->stop;
$primary->safe_psql('postgres', 'CHECKPOINT');
my $before = $primary->safe_psql('postgres', "SELECT count(*) FROM $t");
is($primary->safe_psql('postgres', remember_sql(2301, 3300)), '1000', 'a batch of 1,000 committed');
$found = $primary->safe_psql('postgres', $self);
$on_primary = $primary->safe_psql('postgres', $search);
$primary->stop('immediate');
$primary->start;
hnsw_clean($primary, $idx, 'after crash recovery');
$rows = $primary->safe_psql('postgres', "SELECT count(*) FROM $t");
is($rows, $before + 1000, 'every committed row is back');
cmp_ok($found, '>=', 0.99 * $rows, "before the crash the index found $found of the $rows rows");
is($primary->safe_psql('postgres', $self), $found, 'after recovery it finds the same rows');
is($primary->safe_psql('postgres', $search), $on_primary, 'and the 20 searches return what they did');
is($primary->safe_psql('postgres', remember_sql(3301, 3400)), '100', 'and takes batches again');
hnsw_clean($primary, $idx, 'after a batch following recovery');

# crash in the middle of a batch, early, after two of its page records
# (hnsw.test_crash_after_page_writes makes the backend flush the WAL and
# PANIC): usually two of its new pages, or, when the free space map had
# room for every row, its first list.  Recovery replays those: their lists
# must name only elements that exist (no dangling link), and the aborted
# batch's rows must be gone.
$rows = $primary->safe_psql('postgres', "SELECT count(*) FROM $t");
$found = $primary->safe_psql('postgres', $self);
my ($ret, $out, $err) = $primary->psql('postgres',
	"SET hnsw.test_crash_after_page_writes = 2; " . remember_sql(3401, 3700));
like($err, qr/server closed the connection|terminated abnormally|PANIC/,
	'the backend crashed in the middle of writing a batch\'s pages');
like(slurp_file($primary->logfile), qr/crashing after 2 page writes/, 'where the test asked it to');
# (the postmaster may be gone already: the suite runs with restart_after_crash off)
$primary->stop('immediate', fail_ok => 1);
$primary->start;
# the elements of the pages written are unreachable until VACUUM removes
# them (their rows died with the batch); nothing else may be wrong
my $kinds = "SELECT string_agg(DISTINCT kind, ', ') FROM agentmem.hnsw_check('$idx') WHERE kind <> 'unreachable'";
my $early = $primary->safe_psql('postgres', $kinds);
like($early, qr/^(batch cut short)?$/,
	'after a crash between two page records hnsw_check reports no problem but unreachable dead elements');
is($primary->safe_psql('postgres', "SELECT count(*) FROM $t"), $rows, 'no row of the crashed batch is there');
if ($early eq '')
{
	# only new pages were written: nothing on disk leads to them
	is($primary->safe_psql('postgres', $self), $found, 'the index finds the same rows as before the batch');
}
else
{
	# a list was written too: a search hands the relinking to a worker
	$primary->safe_psql('postgres', $self);
	ok($primary->poll_query_until('postgres', "SELECT count(*) = 0 FROM ($kinds) k WHERE string_agg IS NOT NULL"),
		'a list was written too, and a worker relinks the index');
	is($primary->safe_psql('postgres', $self_wide), $rows, 'the index finds every row once relinked');
}
# VACUUM frees the crashed batch's elements (and any page it added but
# never wrote): the same rows again fit without growing the index
my $size = $primary->safe_psql('postgres', "SELECT pg_relation_size('$idx')");
$primary->safe_psql('postgres', "VACUUM $t");
hnsw_clean($primary, $idx, 'after the crash and a VACUUM');
is($primary->safe_psql('postgres', remember_sql(3701, 4000)), '300', 'and takes batches again');
cmp_ok($primary->safe_psql('postgres', "SELECT pg_relation_size('$idx')"), '<=', $size,
	'the same rows again fit in the space the crashed batch left behind');
hnsw_clean($primary, $idx, 'after a batch following that recovery');

# crash later in a batch, after 20 of its page records, while its changed
# lists are being written, with the standby streaming again.  Those
# records go one page at a time, and a list that took a new row in and
# dropped an old neighbour can reach disk before the lists that lead to
# that neighbour another way: without the metapage's batch_writing mark,
# 1-2 of these 3,080 rows were unreachable until the next VACUUM.  Now the
# mark survives the crash and hnsw_check reports it; the first search on
# the primary starts a background worker that relinks the index, and the
# standby, which cannot write, gets the relinking through the WAL.
$standby->start;
$rows = $primary->safe_psql('postgres', "SELECT count(*) FROM $t");
$found = $primary->safe_psql('postgres', $self);
($ret, $out, $err) = $primary->psql('postgres',
	"SET hnsw.test_crash_after_page_writes = 20; " . remember_sql(4001, 4300));
like(slurp_file($primary->logfile), qr/crashing after 20 page writes/,
	'a backend crashed while writing a batch\'s lists');
$primary->stop('immediate', fail_ok => 1);
$primary->start;
is($primary->safe_psql('postgres', "SELECT count(*) FROM $t"), $rows, 'no row of that batch is there');
is($primary->safe_psql('postgres', $kinds), 'batch cut short',
	'hnsw_check reports the batch cut short, and nothing but unreachable elements besides');
$primary->wait_for_catchup($standby);
like($standby->safe_psql('postgres', $self), qr/^\d+$/, 'the standby answers searches meanwhile');
is($standby->safe_psql('postgres', $kinds), 'batch writing',
	'and its hnsw_check reports the mark as the primary\'s batch writing');
my $log_offset = -s $primary->logfile;
like($primary->safe_psql('postgres', $self), qr/^\d+$/, 'the first searches on the primary go on');
ok($primary->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM agentmem.hnsw_check('$idx') WHERE kind = 'batch cut short'"),
	'and a background worker clears the mark');
like(slurp_file($primary->logfile, $log_offset), qr/relinking index .* after a batch that ended part-way/,
	'once it has relinked the index');
is($primary->safe_psql('postgres', $self_wide), $rows, "the index finds each of the $rows rows by its own vector");
hnsw_clean($primary, $idx, 'after that relinking (the dead rows\' elements are linked too)');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', $self_wide), $rows, 'so does the standby, once it has replayed the relinking');
is($standby->safe_psql('postgres', $self), $primary->safe_psql('postgres', $self),
	'and at ef_search 100 it finds what the primary finds');
hnsw_clean($standby, $idx, 'standby after the relinking');
$primary->safe_psql('postgres', "VACUUM $t");
hnsw_clean($primary, $idx, 'after that crash and a VACUUM');
is($primary->safe_psql('postgres', $self), $found, 'after VACUUM the index finds those rows too');
$standby->stop;

# $sql writes into the space whose last batch was cut short: it must
# relink the index before it writes, and leave every row findable
sub writer_relinks
{
	my ($sql, $who) = @_;
	my $offset = -s $primary->logfile;
	$primary->safe_psql('postgres', $sql);
	like(slurp_file($primary->logfile, $offset), qr/relinking index .* after a batch that ended part-way/,
		"$who relinked the index first");
	hnsw_clean($primary, $idx, "after $who");
	is($primary->safe_psql('postgres', $self_wide), $primary->safe_psql('postgres', "SELECT count(*) FROM $t"),
		"after $who the index finds every row, the new ones too");
}

# a batch cut short by an error, not a crash, leaves the same mark; the
# next batch relinks the index before it links its own rows
($ret, $out, $err) = $primary->psql('postgres',
	"SET hnsw.test_fail_after_page_writes = 25; " . remember_sql(4301, 4600));
like($err, qr/failing after 25 page writes/, 'a batch failed while writing its lists');
is($primary->safe_psql('postgres', $kinds), 'batch cut short', 'hnsw_check reports the mark it left');
writer_relinks(remember_sql(4601, 4700), 'the next batch');

# the same cut short by a crash, and then a single-row INSERT first: it
# relinks the index before it inserts
($ret, $out, $err) = $primary->psql('postgres',
	"SET hnsw.test_crash_after_page_writes = 30; " . remember_sql(4701, 5000));
like(slurp_file($primary->logfile), qr/crashing after 30 page writes/, 'another batch cut short');
$primary->stop('immediate', fail_ok => 1);
$primary->start;
writer_relinks("INSERT INTO $t (content, embedding) VALUES ('one row', '" . random_vec() . "')",
	'a single-row INSERT');

# and VACUUM clears a mark too
($ret, $out, $err) = $primary->psql('postgres',
	"SET hnsw.test_fail_after_page_writes = 25; " . remember_sql(5001, 5300));
like($err, qr/failing after 25 page writes/, 'one more batch failed');
is($primary->safe_psql('postgres', $kinds), 'batch cut short', 'and left its mark');
$primary->safe_psql('postgres', "VACUUM $t");
hnsw_clean($primary, $idx, 'after a VACUUM');

$primary->stop;
done_testing();

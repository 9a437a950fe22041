# 023_hnsw_concurrency.t: inserts, deletes, searches and VACUUM at once.
#
# pgbench runs for 20 s with four clients mixing single-row inserts of
# random vectors, batched inserts (agentmem.remember of 20 rows, linked
# into the graph together under the index's update lock), deletes and
# k-nearest searches (plain and filtered with an iterative scan) and batches
# that fail while writing their lists (hnsw.test_fail_after_page_writes,
# the error caught in a DO block), while a
# second pgbench client runs VACUUM every half second.  The table is a
# memory space's table.  No client may fail (a deadlock or any error aborts a pgbench
# client).  Afterwards the index must be sound (hnsw_check), a complete
# index scan must return every row of the table once, and the recall@10
# of the index against an exact search on 30 random queries, ties counted
# as hits, must stay above 0.95 at ef_search 200.  (Until 2026-11-23 the 30 queries were one
# vector drawn once, the uncorrelated subquery being evaluated once, so the
# figure was one query's recall: "1.000" in most runs, 0.6-0.9 in a few.
# Over 30 distinct queries, 16-d uniform data after this churn gives
# 0.90-0.99 at ef_search 100, 0.95-0.97 at 200, at a58d2a9 and after.)
use strict;
use warnings;

use Cwd;
use lib "$ENV{AGENTMEM_TEST}/perl";
use AgentmemHnsw;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $seconds = 20;
my $dim = 16;
my $rand_vec = "(SELECT array_agg(random() * 2 - 1)::vector FROM generate_series(1, $dim))";

my $node = new_node('concurrency');
$node->append_conf('postgresql.conf', "autovacuum = off\nmax_connections = 30");
$node->restart;
$node->safe_psql('postgres', "SELECT agentmem.create_space('c', $dim, 'l2')");
my $t = $node->safe_psql('postgres', "SELECT agentmem.space_table('c')");
# tv: the space's table as the helpers (index_count, seq_count) read one
$node->safe_psql(
	'postgres', qq{
	DROP INDEX ${t}_embedding;
	CREATE VIEW tv AS SELECT id, embedding AS v FROM $t;
	INSERT INTO $t (content, embedding) SELECT 'row', (SELECT array_agg(random() * 2 - 1)::vector
							  FROM generate_series(1, $dim) WHERE g > 0)
	FROM generate_series(1, 3000) g;
	CREATE INDEX t_l2 ON $t USING hnsw (embedding vector_l2_ops);
	ANALYZE $t;
});
is($node->safe_psql('postgres', "SELECT elements, problems FROM agentmem.hnsw_info('agentmem_spaces.t_l2')"),
	'3000|0', 'the index holds the first 3,000 rows');

my $dir = Cwd::abs_path($node->basedir);
my %scripts = (
	'insert.sql' => "INSERT INTO $t (content, embedding) SELECT 'row', $rand_vec;\n",
	'remember.sql' => "SELECT count(*) FROM agentmem.remember('c', "
	  . "array_fill('batch'::text, ARRAY[20]), "
	  . "ARRAY(SELECT $rand_vec FROM generate_series(1, 20) g));\n",
	'delete.sql' => "\\set id random(1, 20000)\nDELETE FROM $t WHERE id = :id;\n",
	'search.sql' => "SET enable_seqscan = off;\n"
	  . "SELECT id FROM $t ORDER BY embedding <-> $rand_vec LIMIT 10;\n",
	'filtered.sql' => "SET enable_seqscan = off;\nSET hnsw.iterative_scan = relaxed_order;\n"
	  . "SELECT id FROM $t WHERE id % 20 = 7 ORDER BY embedding <-> $rand_vec LIMIT 5;\n",
	# a batch that fails while writing its lists, its error caught: it
	# leaves the metapage's mark, which the next insert, batch, VACUUM or
	# (through a background worker) search must clear by relinking
	'failing.sql' => "SET hnsw.test_fail_after_page_writes = 5;\n"
	  . "DO \$\$ BEGIN PERFORM count(*) FROM agentmem.remember('c', array_fill('failed'::text, ARRAY[20]), "
	  . "ARRAY(SELECT $rand_vec FROM generate_series(1, 20) g)); "
	  . "EXCEPTION WHEN internal_error THEN "
	  . "IF SQLERRM NOT LIKE '%hnsw.test_fail_after_page_writes asks' THEN RAISE; END IF; END \$\$;\n"
	  . "RESET hnsw.test_fail_after_page_writes;\n",
	'vacuum.sql' => "VACUUM $t;\n\\sleep 500 ms\n",);
for my $f (keys %scripts)
{
	open(my $fh, '>', "$dir/$f") or die $!;
	print $fh $scripts{$f};
	close $fh;
}

my @conn = ('-h', $node->host, '-p', $node->port, '-n', 'postgres');
my ($out1, $err1, $out2, $err2) = ('', '', '', '');
my $workers = IPC::Run::start(
	[
		'pgbench', @conn, '-c', '4', '-j', '2', '-T', $seconds,
		'-f', "$dir/insert.sql\@3", '-f', "$dir/remember.sql\@1", '-f', "$dir/delete.sql\@2",
		'-f', "$dir/search.sql\@3", '-f', "$dir/filtered.sql\@1", '-f', "$dir/failing.sql\@1"
	],
	'>', \$out1, '2>', \$err1);
my $vacuum = IPC::Run::start(
	[ 'pgbench', @conn, '-c', '1', '-T', $seconds, '-f', "$dir/vacuum.sql" ],
	'>', \$out2, '2>', \$err2);
$workers->finish;
my $rc1 = $?;
$vacuum->finish;
my $rc2 = $?;

is($rc1, 0, 'the insert/delete/search clients all finished') or diag($err1);
is($rc2, 0, 'the VACUUM client finished') or diag($err2);
unlike($err1 . $err2, qr/ERROR|aborted/, 'no client saw an error');
my ($done)   = $out1 =~ /number of transactions actually processed: (\d+)/;
my ($vacuums) = $out2 =~ /number of transactions actually processed: (\d+)/;
like($out1, qr/number of failed transactions: 0 /, 'no failed transaction');
cmp_ok($done // 0, '>', 1000, 'the clients ran more than 1,000 transactions');
cmp_ok($vacuums // 0, '>=', 10, 'VACUUM ran at least 10 times');
note("transactions: " . ($done // '?') . ", VACUUMs: " . ($vacuums // '?'));

my $rows = $node->safe_psql('postgres', "SELECT count(*) FROM $t");
cmp_ok($node->safe_psql('postgres', "SELECT count(*) FROM $t WHERE content = 'batch'"),
	'>', 100, 'remember batches landed');
note("rows at the end: $rows");
is($node->safe_psql('postgres', "SELECT count(*) FROM $t WHERE content = 'failed'"), '0',
	'no row of a failed batch is there');
my $log = slurp_file($node->logfile);
my $relinked = () = $log =~ /relinking index "t_l2" after a batch that ended part-way/g;
cmp_ok($relinked, '>', 0, "batches failed while writing their lists, and the index was relinked ($relinked times)");
# the last failed batch's mark may still be there: a search starts the worker
$node->safe_psql('postgres', "SET enable_seqscan = off; SELECT id FROM $t ORDER BY embedding <-> $rand_vec LIMIT 1");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM agentmem.hnsw_check('agentmem_spaces.t_l2') WHERE kind = 'batch cut short'"),
	'no batch is left cut short');
hnsw_clean($node, 'agentmem_spaces.t_l2', 'after the concurrent run');
is(index_count($node, 'tv', 't_l2'), seq_count($node, 'tv'),
	'a complete index scan returns every row once');
# INDEX_CLEANUP ON: with few dead rows left, VACUUM may otherwise skip
# the index (and leave elements of LP_DEAD heap items) by design
$node->safe_psql('postgres', "VACUUM (INDEX_CLEANUP ON) $t");
hnsw_clean($node, 'agentmem_spaces.t_l2', 'after a final VACUUM');
is($node->safe_psql('postgres', "SELECT elements, deleted FROM agentmem.hnsw_info('agentmem_spaces.t_l2')"),
	"$rows|0", 'after a final VACUUM the index holds exactly the rows');

# recall@10 at ef_search 200 against exact search on 30 random queries
# (correlated with g, so each row draws its own vector).  A returned row is
# a hit when it is no farther than the exact 10th nearest, as ann-benchmarks
# counts: each remember() above stores 20 copies of one vector (its subquery
# is evaluated once), and which copies of a tie an index scan returns is not
# which ones the exact search picks.  Counting by id, those ties alone made
# the figure 0.85-0.99 depending on where elements were placed; counted by
# distance it is 0.99-1.00 (2026-11-23).
my $recall = $node->safe_psql(
	'postgres', qq{
	CREATE TABLE q AS SELECT g AS qid, (SELECT array_agg(random() * 2 - 1)::vector
										FROM generate_series(1, $dim) WHERE g > 0) AS v
	FROM generate_series(1, 30) g;
	SET enable_indexscan = off; SET enable_bitmapscan = off;
	CREATE TABLE exact AS SELECT qid, ARRAY(SELECT id FROM $t t ORDER BY t.embedding <-> q.v LIMIT 10) AS ids FROM q;
	RESET enable_indexscan;
	SET enable_seqscan = off; SET hnsw.ef_search = 200;
	CREATE TABLE got AS SELECT qid, ARRAY(SELECT id FROM $t t ORDER BY t.embedding <-> q.v LIMIT 10) AS ids FROM q;
	SELECT round(avg((SELECT count(*) FROM unnest(g.ids) x JOIN $t t ON t.id = x
					  WHERE t.embedding <-> q.v <= (SELECT max(t2.embedding <-> q.v)
													FROM unnest(e.ids) y JOIN $t t2 ON t2.id = y)) / 10.0), 3)
	FROM got g JOIN exact e USING (qid) JOIN q USING (qid);
});
cmp_ok($recall, '>=', 0.95, "recall\@10 at ef_search 200 is $recall (bar 0.95)");
like($node->safe_psql('postgres',
		"SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT id FROM $t ORDER BY embedding <-> (SELECT v FROM q LIMIT 1) LIMIT 10"),
	qr/Index Scan using t_l2/, 'the recall queries scan the index');

$node->stop;
done_testing();

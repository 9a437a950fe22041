# 028_hnsw_batch_refresh.t: two sessions remembering into one space.
#
# A backend keeps the graph of its last remember() batch for its next one
# into the same index (hnswbatch.c).  When another session's batch changed
# pages in between, the next batch forgets what it held of those pages
# and reads them again where its searches come (BatchGraphRefresh); the
# rest is reused.  With hnsw.test_verify_kept_graph on, every node still
# held after that is compared with the index (vector, level, links) and
# any difference is an error.  Two sessions alternate batches, then the
# index must be sound and find every row; VACUUM, single-row inserts and a
# batch cut short come in between too.
use strict;
use warnings;

use lib "$ENV{AGENTMEM_TEST}/perl";
use AgentmemHnsw;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $dim = 16;
srand(28);
sub random_vec { return AgentmemHnsw::random_vec($dim); }
sub remember_sql { return remember_rows_sql('r', $dim, $_[0]); }

my $node = new_node('refresh');
$node->append_conf('postgresql.conf', "autovacuum = off");
$node->restart;
$node->safe_psql('postgres', "SELECT agentmem.create_space('r', $dim, 'l2', m => 8)");
my $t = $node->safe_psql('postgres', "SELECT agentmem.space_table('r')");
my $idx = "${t}_embedding";
is($node->safe_psql('postgres', remember_sql(2000)), '2000', 'a first batch of 2,000 rows');

# two sessions; their messages (DEBUG1 ones included) are gathered in $msgs
my @s = map { $node->background_psql('postgres', on_error_stop => 0) } 1 .. 2;
my $msgs = '';
sub run_in
{
	my ($i, $sql) = @_;
	my $out = $s[$i]->query($sql);
	$msgs .= $s[$i]->{stderr};
	$s[$i]->{stderr} = '';
	return $out;
}
run_in($_, "SET client_min_messages = debug1; SET hnsw.test_verify_kept_graph = on;") for 0, 1;

# alternate: each batch finds the other session's changes since its last
my $ok = 1;
for my $round (1 .. 4)
{
	for my $i (0, 1)
	{
		$ok &&= run_in($i, remember_sql(150)) eq '150';
	}
}
ok($ok, 'two sessions alternate eight batches of 150 rows') or diag($msgs);
my $refreshed = () = $msgs =~ /changed since the last batch; its changed pages are read again/g;
my $afresh = () = $msgs =~ /its graph is read afresh/g;
is($refreshed, 6, 'every batch after each session\'s first reads again only what the other changed');
is($afresh, 0, 'and none reads the whole graph afresh');
unlike($msgs, qr/differs from the index|ERROR/, 'what each kept of the graph matched the index');
hnsw_clean($node, $idx, 'after alternating batches');

# single-row inserts and a VACUUM in between: VACUUM drops the kept graphs
# (it invalidates the index's relcache entry); inserts change pages
$node->safe_psql('postgres',
	join('', map { "INSERT INTO $t (content, embedding) VALUES ('single', '" . random_vec() . "');" } 1 .. 20));
is(run_in(0, remember_sql(150)), '150', 'a batch after single-row inserts');
$node->safe_psql('postgres', "DELETE FROM $t WHERE id % 7 = 0; VACUUM $t");
is(run_in(1, remember_sql(150)), '150', 'a batch after a VACUUM');
is(run_in(0, remember_sql(150)), '150', 'and one more from the other session');

# a batch cut short in one session: the other relinks before its batch,
# then the first reuses its kept graph (it was dropped with the error)
my ($rc, $out, $err) = $node->psql('postgres',
	"SET hnsw.test_fail_after_page_writes = 8; " . remember_sql(150));
like($err, qr/failing after 8 page writes/, 'a third session\'s batch is cut short');
is(run_in(1, remember_sql(150)), '150', 'the next batch relinks and goes in');
is(run_in(0, remember_sql(150)), '150', 'and so does the other session\'s');
unlike($msgs, qr/differs from the index|ERROR/, 'what each kept of the graph still matched the index');
$_->quit for @s;

hnsw_clean($node, $idx, 'at the end');
my $rows = $node->safe_psql('postgres', "SELECT count(*) FROM $t");
is($node->safe_psql('postgres',
		"SET enable_seqscan = off; SET hnsw.ef_search = 400; "
		  . "SELECT count(*) FROM $t a WHERE a.id = "
		  . "(SELECT b.id FROM $t b ORDER BY b.embedding <-> a.embedding LIMIT 1)"),
	$rows, "the index finds each of the $rows rows by its own vector");

$node->stop;
done_testing();

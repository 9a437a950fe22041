# 027_hnsw_batch_cache.t: the graph a backend keeps between remember()
# batches (hnswbatch.c) under wal_level = minimal.
#
# There an index built in its transaction is not WAL-logged, and with
# wal_skip_threshold = 0 it is fsynced at commit instead, so its pages keep
# LSN 0 until something changes them; a kept graph tracks pages by LSN, 0
# included.  VACUUM between batches invalidates the index's relcache entry,
# which drops the kept graph; a plain INSERT changes pages only, and the
# next batch must see that and read those pages again.  Every row must stay
# findable.
use strict;
use warnings;

use lib "$ENV{AGENTMEM_TEST}/perl";
use AgentmemHnsw;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $dim = 8;
srand(27);
sub random_vec { return AgentmemHnsw::random_vec($dim); }
sub remember_sql { return remember_rows_sql('c', $dim, $_[0]); }

my $node = new_node('minimal');
$node->append_conf('postgresql.conf',
	"wal_level = minimal\nmax_wal_senders = 0\nwal_skip_threshold = 0\nautovacuum = off");
$node->restart;
$node->safe_psql('postgres', "SELECT agentmem.create_space('c', $dim, 'l2', m => 4, ef_construction => 16)");
my $t = $node->safe_psql('postgres', "SELECT agentmem.space_table('c')");
my $rows = join(', ', map { "('p$_', '" . random_vec() . "')" } 1 .. 3000);
$node->safe_psql('postgres', "DROP INDEX ${t}_embedding; INSERT INTO $t (content, embedding) VALUES $rows;");
# built in its own transaction: no WAL, fsynced at commit, pages at LSN 0
$node->safe_psql('postgres', "BEGIN; CREATE INDEX c_idx ON $t USING hnsw (embedding vector_l2_ops) "
	  . "WITH (m = 4, ef_construction = 16); COMMIT;");
my $idx = $t =~ s/\.[^.]*$/.c_idx/r;

# one session: batch, VACUUM, batch, plain INSERT, batch, batch
my ($out, $err) = ('', '');
$node->psql('postgres',
	"SET client_min_messages = debug1;\n"
	  . remember_sql(200)
	  . "\nDELETE FROM $t WHERE id % 4 = 0;\nVACUUM $t;\n"
	  . remember_sql(200)
	  . "\nINSERT INTO $t (content, embedding) VALUES ('plain', '" . random_vec() . "');\n"
	  . remember_sql(200) . "\n" . remember_sql(200) . "\n",
	stdout => \$out, stderr => \$err, on_error_stop => 1);
is($out, "200\n200\n200\n200", 'four batches of 200 rows');
my @batch_msgs = grep { /hnsw: / } split /\n/, $err;
s/^.*?(hnsw: )/$1/ for @batch_msgs;
is_deeply(\@batch_msgs, [
	'hnsw: index "c_idx" changed since the last batch; its changed pages are read again',
	'hnsw: batch into "c_idx" reuses the graph of the last batch' ],
	'after VACUUM nothing is kept, a plain INSERT is seen, an unchanged index is reused')
  or diag($err);

hnsw_clean($node, $idx, 'after the batches');
my $found = $node->safe_psql('postgres',
	"SET enable_seqscan = off; SET hnsw.ef_search = 100; "
	  . "SELECT count(*) FILTER (WHERE a.id = (SELECT b.id FROM $t b ORDER BY b.embedding <-> a.embedding LIMIT 1)), "
	  . "count(*) FROM $t a");
my ($self, $all) = split /\|/, $found;
cmp_ok($self, '>=', 0.99 * $all, "every row finds itself through the index ($self of $all)");

done_testing();

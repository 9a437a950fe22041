# 021_hnsw_crash.t: crash recovery of hnsw indexes.
#
# A client inserts rows one by one, each in its own autocommit statement
# with RETURNING id, so an id it prints is committed (the server sends the
# command's completion only after the commit).  In the middle of that
# stream the node is stopped in immediate mode (no shutdown checkpoint,
# like kill -9) and restarted.  After recovery:
#
#   - every id the client saw committed is in the table, and an index scan
#     returns it: the table stays under 1,000 rows and hnsw.ef_search is
#     1000, so the search reaches every element of a sound graph;
#   - the index scan returns as many rows as a sequential scan, each once;
#   - agentmem.hnsw_check reports no problem.
#
# Three rounds with inserts alone, then three where a second client deletes
# rows (also printing the committed ids) and a third runs VACUUM in a loop
# while the inserts go on.  An unlogged table's index must come back empty
# (from its init fork) and work.
use strict;
use warnings;

use lib "$ENV{AGENTMEM_TEST}/perl";
use AgentmemHnsw;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $dim = 8;
srand(21);
sub random_vec { return vec_text([ map { rand(2) - 1 } 1 .. $dim ]); }

my $node = new_node('crash');
$node->append_conf('postgresql.conf', "autovacuum = off\nrestart_after_crash = on");
$node->reload;

my %vec;    # id -> vector text, for every row ever inserted
my $next_id = 1;
my @base;
for (1 .. 200)
{
	my $id = $next_id++;
	$vec{$id} = random_vec();
	push @base, "($id, '$vec{$id}')";
}
$node->safe_psql(
	'postgres', qq{
	CREATE TABLE t (id int PRIMARY KEY, v vector($dim));
	INSERT INTO t VALUES @{[ join(', ', @base) ]};
	CREATE INDEX t_l2 ON t USING hnsw (v vector_l2_ops) WITH (m = 8, ef_construction = 32);
	CREATE UNLOGGED TABLE u (id int, v vector($dim));
	INSERT INTO u SELECT id, v FROM t;
	CREATE INDEX u_cos ON u USING hnsw (v vector_cosine_ops);
	CHECKPOINT;
});
my %committed = map { $_ => 1 } 1 .. 200;    # ids that must be there
my %deleted;                                 # ids committed as deleted
my $in_flight;    # the one delete whose fate the crash left open

# Start psql on a script; returns the harness and a ref to its stdout.
sub start_psql
{
	my ($script) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-f', '-' ],
		'<', \$script, '>', \$out, '2>', \$err);
	return { h => $h, out => \$out, err => \$err };
}

# Pump the clients until the inserter printed $n ids, or 60 s passed.
sub wait_for_ids
{
	my ($clients, $n) = @_;
	my $deadline = time + 60;
	while (time < $deadline)
	{
		$_->{h}->pump_nb for @$clients;
		my @ids = ${ $clients->[0]{out} } =~ /^(\d+)$/mg;
		return scalar @ids if @ids >= $n;
		select(undef, undef, undef, 0.01);
	}
	return -1;
}

# Collect what each client printed until the crash ended it.
sub finish_clients
{
	my ($clients) = @_;
	for my $c (@$clients)
	{
		eval { $c->{h}->finish; 1 } or $c->{h}->kill_kill;
	}
}

sub check_recovered
{
	my ($what) = @_;
	my %in_table = map { $_ => 1 } split /\n/,
	  $node->safe_psql('postgres', 'SET enable_indexscan = off; SELECT id FROM t');
	if (defined $in_flight)
	{
		note("$what: the delete in flight at the crash, of id $in_flight, "
			  . ($in_table{$in_flight} ? 'did not commit' : 'committed'));
		$deleted{$in_flight} = 1 unless $in_table{$in_flight};
		$in_flight = undef;
	}
	my @want = sort { $a <=> $b } grep { !$deleted{$_} } keys %committed;
	my @lost = grep { !$in_table{$_} } @want;
	is(scalar @lost, 0, "$what: every committed id is in the table")
	  or diag("lost: @lost[0 .. ($#lost < 9 ? $#lost : 9)]");
	my @back = grep { $deleted{$_} && $in_table{$_} } keys %deleted;
	is(scalar @back, 0, "$what: no committed delete came back");
	cmp_ok(scalar keys %in_table, '<', 1000, "$what: the table stays under 1,000 rows");

	my $set = 'SET enable_seqscan = off; SET hnsw.ef_search = 1000;';
	my $q = "SELECT id FROM t ORDER BY v <-> '" . random_vec() . "' LIMIT 1000";
	like($node->safe_psql('postgres', "$set EXPLAIN (COSTS OFF) $q"),
		qr/Index Scan using t_l2/, "$what: the check query scans the index");
	my @via_index = split /\n/, $node->safe_psql('postgres', "$set $q");
	my %seen;
	$seen{$_}++ for @via_index;
	my @missing = grep { !$seen{$_} } @want;
	is(scalar @missing, 0, "$what: the index returns every committed id")
	  or diag("missing from the index: @missing[0 .. ($#missing < 9 ? $#missing : 9)]");
	is(scalar @via_index, scalar keys %in_table,
		"$what: the index returns as many rows as the table has");
	is(scalar(grep { $seen{$_} > 1 } keys %seen), 0, "$what: no row twice");
	hnsw_clean($node, 't_l2', $what);
}

# One round: inserts (and with $churn, deletes and VACUUM) until the
# inserter printed $n ids, then an immediate stop and a restart.
sub crash_round
{
	my ($what, $n, $churn) = @_;
	my $script = '';
	my @victims;
	$in_flight = undef;
	for (1 .. 2000)
	{
		my $id = $next_id++;
		$vec{$id} = random_vec();
		$script .= "INSERT INTO t VALUES ($id, '$vec{$id}') RETURNING id;\n";
		$script .= "INSERT INTO u VALUES ($id, '$vec{$id}');\n";
	}
	my @clients = (start_psql($script));
	if ($churn)
	{
		my @pool = grep { !$deleted{$_} } sort { $a <=> $b } keys %committed;
		@victims = map { splice(@pool, int(rand(@pool)), 1) } 1 .. 300;
		# paced so that deletes are still going on at the crash
		push @clients,
		  start_psql(join('',
			  map { "DELETE FROM t WHERE id = $_ RETURNING id;\nSELECT pg_sleep(0.002);\n" } @victims));
		push @clients, start_psql("VACUUM t;\nSELECT pg_sleep(0.05);\n" x 2000);
	}
	my $got = wait_for_ids(\@clients, $n);
	cmp_ok($got, '>=', $n, "$what: the client committed $n inserts before the crash");
	$node->stop('immediate');
	finish_clients(\@clients);
	my @ins = ${ $clients[0]{out} } =~ /^(\d+)$/mg;
	$committed{$_} = 1 for @ins;
	if ($churn)
	{
		my @del = ${ $clients[1]{out} } =~ /^(\d+)$/mg;
		is_deeply(\@del, [ @victims[ 0 .. $#del ] ], "$what: the deletes were acknowledged in order");
		$deleted{$_} = 1 for @del;
		# the delete after the last acknowledged one may or may not have
		# committed before the crash
		$in_flight = $victims[ scalar @del ] if @del < @victims;
		note("$what: " . scalar(@del) . ' deletes committed before the crash');
		like(${ $clients[2]{err} }, qr/terminat|connection|server closed/i,
			"$what: VACUUM was running until the crash");
	}
	note("$what: " . scalar(@ins) . ' inserts committed before the crash');
	$node->start;
	check_recovered($what);
}

crash_round("inserts, round $_", 80, 0) for 1 .. 3;
crash_round("inserts with deletes and VACUUM, round $_", 150, 1) for 1 .. 3;

# after a VACUUM the dead elements of interrupted inserts are gone too
$node->safe_psql('postgres', 'VACUUM (INDEX_CLEANUP ON) t');
check_recovered('after VACUUM');
is($node->safe_psql('postgres', "SELECT deleted FROM agentmem.hnsw_info('t_l2')"),
	'0', 'after VACUUM no deleted element is left');

# the unlogged table and its index were reset
is($node->safe_psql('postgres', "SELECT count(*) FROM u"), '0',
	'the unlogged table is empty after the crash');
is($node->safe_psql('postgres', "SELECT elements, entry_level, pages FROM agentmem.hnsw_info('u_cos')"),
	'0|-1|1', 'its index is the empty one of the init fork');
$node->safe_psql('postgres', 'INSERT INTO u SELECT id, v FROM t');
is( $node->safe_psql('postgres',
		"SELECT elements = (SELECT count(*) FROM u), problems FROM agentmem.hnsw_info('u_cos')"),
	't|0', 'and takes new rows');
is(index_count($node, 'u', 'u_cos', '<=>'), seq_count($node, 'u'),
	'a complete scan of the unlogged index returns every row');
hnsw_clean($node, 'u_cos', 'unlogged index after the crash');

$node->stop;
done_testing();

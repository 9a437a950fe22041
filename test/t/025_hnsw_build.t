# 025_hnsw_build.t: what CREATE INDEX ... USING hnsw reports while it runs.
#
# Progress: a second connection polls pg_stat_progress_create_index while
# an index on 50,000 rows is built, and must see the phase "loading
# tuples" with tuples_done rising towards tuples_total = 50,000, then
# "writing index".  (The build takes about 2 s here, the writing phase
# 0.5 to 0.7 s; the poll runs every few milliseconds on one connection.)
#
# maintenance_work_mem: a build whose graph outgrows it must say so with a
# NOTICE (the row count in it depends on the random levels, so it is
# matched here rather than in a regression test) and still give a sound
# index that returns every row.
use strict;
use warnings;

use lib "$ENV{AGENTMEM_TEST}/perl";
use AgentmemHnsw;
use PostgreSQL::Test::BackgroundPsql;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = new_node('build');
$node->safe_psql(
	'postgres', q{
	CREATE TABLE p (id int, v vector(128));
	INSERT INTO p SELECT g, (SELECT array_agg(random()) FROM generate_series(1, 128) WHERE g > 0)::vector
	FROM generate_series(1, 50000) g;
	ANALYZE p;
});

# ------------------------------------------------------------ progress
my $build = $node->background_psql('postgres');
my $poll  = $node->background_psql('postgres');
$build->query_safe("SET maintenance_work_mem = '256MB'");
my $pid = $build->query_safe('SELECT pg_backend_pid()');
$build->query_until(qr/started/,
	"\\echo started\nCREATE INDEX p_l2 ON p USING hnsw (v) WITH (m = 4, ef_construction = 8);\n\\echo built\n");

my @samples;    # [ seconds, phase, tuples_done, tuples_total ]
my $t0 = time;
my $idle = 0;
while (time - $t0 < 120)
{
	my $row = $poll->query_safe(
		"SELECT phase || '|' || tuples_done || '|' || tuples_total FROM pg_stat_progress_create_index WHERE pid = $pid");
	if ($row eq '')
	{
		# the build is over once the report is gone after having been seen
		last if @samples && ++$idle > 3;
	}
	else
	{
		push @samples, [ sprintf('%.3f', time - $t0), split /\|/, $row ];
	}
	usleep(2000);
}
$build->quit;
$poll->quit;

my @loading = grep { $_->[1] eq 'building index: loading tuples' } @samples;
my @writing = grep { $_->[1] eq 'building index: writing index' } @samples;
note(scalar(@samples) . ' samples; first and last of each phase:');
note(join(' ', @$_)) for grep { defined } ($loading[0], $loading[-1], $writing[0], $writing[-1]);

cmp_ok(scalar @loading, '>=', 2, 'the phase "loading tuples" is reported');
cmp_ok(scalar @writing, '>=', 1, 'the phase "writing index" is reported');
my @graph = grep { $_->[1] eq 'building index: building graph' } @samples;
ok(!@graph || ($graph[0][0] >= $loading[-1][0] && $graph[-1][0] <= $writing[0][0]),
	'"building graph", when caught, comes between loading and writing');
my %seen = map { $_->[1] => 1 } @samples;
is_deeply([ sort grep { !/^building index: (initializing|loading tuples|building graph|writing index)$/ && $_ ne 'initializing' } keys %seen ],
	[], 'no other phase is reported') or diag(join(', ', keys %seen));
ok(@loading && @writing && $loading[-1][0] < $writing[0][0], 'loading comes before writing');
is(scalar(grep { $_->[3] != 50000 } @loading), 0, 'while loading, tuples_total is the table\'s 50,000 rows');
my @done = map { $_->[2] } @loading;
ok(@done >= 2 && $done[-1] > $done[0], "tuples_done rises while loading ($done[0] .. $done[-1])");
is(scalar(grep { $done[$_] < $done[ $_ - 1 ] } 1 .. $#done), 0, 'and never goes back');
cmp_ok($done[-1] // 0, '<=', 50000, 'and stays within tuples_total');
cmp_ok(scalar(grep { $_->[2] > 0 && $_->[2] < 50000 } @loading), '>=', 1,
	'a sample caught the loading half way');

# (whether every element of such a build is reachable is asserted by
# sql/hnsw_basic.sql and t/020_hnsw_recall.t)
is($node->safe_psql('postgres', "SELECT elements FROM agentmem.hnsw_info('p_l2')"),
	'50000', 'the index holds all 50,000 rows');

# ------------------------------------------------- maintenance_work_mem
# 2,000 rows of 192 dimensions need about 2 MB of graph: more than 1MB
$node->safe_psql('postgres', q{
	CREATE TABLE m (id int, v vector(192));
	INSERT INTO m SELECT g, (SELECT array_agg(random() * 2 - 1) FROM generate_series(1, 192) WHERE g > 0)::vector
	FROM generate_series(1, 2000) g;
});
for my $case ([ 'm_l2', 'vector_l2_ops', '<->' ], [ 'm_cos', 'vector_cosine_ops', '<=>' ])
{
	my ($index, $opclass, $op) = @$case;
	my ($rc, $out, $err) = $node->psql('postgres',
		"SET maintenance_work_mem = '1MB';\nCREATE INDEX $index ON m USING hnsw (v $opclass);");
	is($rc, 0, "$index: the build with maintenance_work_mem = 1MB succeeds");
	like($err, qr/NOTICE:  hnsw graph no longer fits into maintenance_work_mem after (\d+) tuples/,
		"$index: it says the graph no longer fits");
	my ($after) = $err =~ /after (\d+) tuples/;
	ok(defined $after && $after > 0 && $after < 2000, "$index: after " . ($after // '?') . ' of 2,000 rows');
	like($err, qr/DETAIL:  Building will take significantly more time\./, "$index: with the DETAIL");
	like($err, qr/HINT:  Increase maintenance_work_mem to speed up builds\./, "$index: and the HINT");
	is($node->safe_psql('postgres', "SELECT elements, unreachable, problems FROM agentmem.hnsw_info('$index')"),
		'2000|0|0', "$index: all 2,000 rows indexed");
	hnsw_clean($node, $index, "$index: after the build on disk");
	is(index_count($node, 'm', $index, $op), '2000 2000', "$index: a complete index scan returns every row once");
}
# with room for the graph, no NOTICE
my ($rc, $out, $err) = $node->psql('postgres',
	"SET maintenance_work_mem = '64MB';\nCREATE INDEX m_l2_mem ON m USING hnsw (v vector_l2_ops);");
is($rc, 0, 'with maintenance_work_mem = 64MB the build succeeds');
unlike($err, qr/no longer fits/, 'without the NOTICE');

$node->stop;
done_testing();

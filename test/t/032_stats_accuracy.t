# 032_stats_accuracy.t: reported percentiles against timings measured
# independently.
#
# One psql session runs SELECT pg_sleep(x) 200 times with known x (2 to
# 80 ms, spread log-uniformly) under \timing.  For every statement,
#	x <= time the server measured <= time the client measured,
# so the same holds for every order statistic (nearest rank) of the three
# samples.  The percentiles agentmem.statement_latency reports must
# therefore lie between the exact percentile of the sleeps and that of the
# client's timings, each widened by the histogram's error bound (2%).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use POSIX qw(ceil);
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('stats_accuracy');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'agentmem'
agentmem.track = all
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION agentmem');

# a fixed pseudo-random sequence of sleeps, in ms
my $n = 200;
my @sleep_ms;
my $state = 12345;
for (1 .. $n)
{
	$state = ($state * 1103515245 + 12345) % 2147483648;
	my $u = $state / 2147483648;
	push @sleep_ms, sprintf('%.3f', 2 * exp($u * log(40)));
}

my $script = "SELECT agentmem.latency_reset();\n\\timing on\n";
$script .= sprintf("SELECT pg_sleep(%.6f);\n", $_ / 1000) for @sleep_ms;
my ($out, $err) = ('', '');
my $ok = IPC::Run::run(
	[ 'psql', '-X', '-q', '-A', '-t', '-d', $node->connstr('postgres') ],
	'<', \$script, '>', \$out, '2>', \$err);
ok($ok, 'psql ran the sleeps') or diag($err);
my @client_ms = $out =~ /^Time: ([\d.]+) ms/mg;
is(scalar @client_ms, $n, "the client timed $n statements");

# the server computes no query identifiers (compute_query_id = auto, no
# pg_stat_statements): the row is keyed by agentmem's fingerprint of the text
my $qid = $node->safe_psql('postgres', "SELECT agentmem.statement_id('SELECT pg_sleep(0.001)')");
my $row = $node->safe_psql('postgres', qq{
	SELECT calls, mean_ms, p50_ms, p90_ms, p95_ms, p99_ms, p999_ms, max_ms
	  FROM agentmem.statement_latency WHERE queryid = $qid});
my ($calls, $mean, @server) = split /\|/, $row;
is($calls, $n, "the server counted $n executions");

# nearest-rank percentile, as agentmem defines it
sub percentile
{
	my ($q, @v) = @_;
	@v = sort { $a <=> $b } @v;
	my $rank = ceil($q * @v - 1e-9);
	$rank = 1 if $rank < 1;
	return $v[ $rank - 1 ];
}

my $bound = 0.02;
my @q = (0.5, 0.9, 0.95, 0.99, 0.999, 1.0);
my @names = qw(p50 p90 p95 p99 p999 max);
for my $i (0 .. $#q)
{
	my $lo = percentile($q[$i], @sleep_ms);
	my $hi = percentile($q[$i], @client_ms);
	my $got = $server[$i];
	ok( $got >= $lo * (1 - $bound) && $got <= $hi * (1 + $bound),
		sprintf('%s: sleep %.3f <= server %.3f <= client %.3f ms (within 2%%)',
			$names[$i], $lo, $got, $hi));
}

my ($sum_sleep, $sum_client) = (0, 0);
$sum_sleep += $_ for @sleep_ms;
$sum_client += $_ for @client_ms;
ok( $mean >= $sum_sleep / $n && $mean <= $sum_client / $n,
	sprintf('mean: sleep %.3f <= server %.3f <= client %.3f ms',
		$sum_sleep / $n, $mean, $sum_client / $n));

# the histogram of all statements holds the sleeps (and, at most, the
# three short statements run since: EXPLAIN, the query above, the reset)
my $slow = $node->safe_psql('postgres', q{
	SELECT sum(count) FROM agentmem.latency_histogram('all statements') WHERE lower >= 2});
ok($slow >= $n && $slow <= $n + 3, "the histogram of all statements holds the $n sleeps ($slow)");

is( $node->safe_psql('postgres', q{
		SELECT string_agg(target || ' ' || met, ', ' ORDER BY target)
		  FROM agentmem.slo_check('all statements', 1000, 0.5)}),
	'p50 true, p99 false',
	'slo_check: a generous p50 target is met, a tight p99 one is not');

$node->stop;
done_testing();

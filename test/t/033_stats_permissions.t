# 033_stats_permissions.t: who sees which statistics.
#
# As in pg_stat_statements, per-statement rows (agentmem.statement_latency)
# and N+1 findings (agentmem.n_plus_one, which carry query text) of other
# users are visible only to superusers and members of pg_read_all_stats;
# the aggregate views (latency, connections) are visible to everyone;
# latency_reset() is not executable by PUBLIC, and only superusers change
# agentmem.track.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('stats_permissions');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'agentmem'
agentmem.track = all
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION agentmem;
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	CREATE ROLE watcher LOGIN;
	GRANT pg_read_all_stats TO watcher;
	CREATE TABLE notes (id int PRIMARY KEY, body text);
	INSERT INTO notes SELECT i, 'note ' || i FROM generate_series(1, 20) i;
	GRANT SELECT ON notes TO alice, bob;
	SELECT agentmem.latency_reset();
});

# each user runs one statement 6 times in a transaction (an N+1 finding)
for my $user (qw(alice bob))
{
	my $col = $user eq 'alice' ? 'body' : 'id';
	my $sql = "BEGIN;\n";
	$sql .= "SELECT $col FROM notes WHERE id = $_;\n" for 1 .. 6;
	$sql .= "COMMIT;\n";
	$node->safe_psql('postgres', $sql, extra_params => [ '-U', $user ]);
}

sub as
{
	my ($user, $sql) = @_;
	my ($out, $err);
	my $rc = $node->psql('postgres', $sql, stdout => \$out, stderr => \$err,
		extra_params => [ '-U', $user ]);
	return ($rc, $out, $err);
}

my $users = q{SELECT string_agg(DISTINCT userid::regrole::text, ',' ORDER BY userid::regrole::text)};

for my $user (qw(alice bob))
{
	my (undef, $out) = as($user, "$users FROM agentmem.statement_latency");
	is($out, $user, "$user sees only her own rows in statement_latency");
	(undef, $out) = as($user, "$users FROM agentmem.n_plus_one");
	is($out, $user, "$user sees only her own rows in n_plus_one");
	(undef, $out) = as($user, 'SELECT query FROM agentmem.n_plus_one');
	like($out, qr/^SELECT (body|id) FROM notes WHERE id = \d$/, "$user sees her own query text");
}

my (undef, $out) = as('watcher', "$users FROM agentmem.statement_latency WHERE userid IN ('alice'::regrole, 'bob'::regrole)");
is($out, 'alice,bob', 'a member of pg_read_all_stats sees every user in statement_latency');
(undef, $out) = as('watcher', "$users FROM agentmem.n_plus_one");
is($out, 'alice,bob', 'a member of pg_read_all_stats sees every user in n_plus_one');
$out = $node->safe_psql('postgres', "$users FROM agentmem.n_plus_one");
is($out, 'alice,bob', 'a superuser sees every user in n_plus_one');

# aggregates are for everyone
(undef, $out) = as('alice', q{SELECT calls > 0 FROM agentmem.latency WHERE operation = 'all statements'});
is($out, 't', 'alice reads agentmem.latency');
(undef, $out) = as('alice', 'SELECT sessions_started > 0 FROM agentmem.connections');
is($out, 't', 'alice reads agentmem.connections');
(undef, $out) = as('alice', q{SELECT count(*) > 0 FROM agentmem.latency_histogram('all statements')});
is($out, 't', 'alice reads latency_histogram');
(undef, $out) = as('alice', q{SELECT count(*) FROM agentmem.slo_check('all statements', 100, 1000)});
is($out, '2', 'alice runs slo_check');

# reset and settings
my ($rc, undef, $err) = as('alice', 'SELECT agentmem.latency_reset()');
ok($rc != 0 && $err =~ /permission denied for function latency_reset/,
	'alice may not reset the statistics');
($rc, undef, $err) = as('watcher', 'SELECT agentmem.latency_reset()');
ok($rc != 0 && $err =~ /permission denied/, 'nor may pg_read_all_stats');
($rc, undef, $err) = as('alice', q{SET agentmem.track = 'none'});
ok($rc != 0 && $err =~ /permission denied to set parameter "agentmem.track"/,
	'alice may not change agentmem.track');
($rc, undef, $err) = as('alice', q{SET agentmem.n_plus_one_log = 'warning'});
is($rc, 0, 'alice may choose how N+1 findings are reported to her');

$node->safe_psql('postgres', 'GRANT EXECUTE ON FUNCTION agentmem.latency_reset() TO alice');
($rc, undef, $err) = as('alice', 'SELECT agentmem.latency_reset()');
is($rc, 0, 'after GRANT EXECUTE, alice may reset') or diag($err);
is($node->safe_psql('postgres', 'SELECT count(*) FROM agentmem.n_plus_one'), '0',
	'and the reset forgot the findings');

$node->stop;
done_testing();

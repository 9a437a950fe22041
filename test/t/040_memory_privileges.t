# 040_memory_privileges.t: memory spaces and the embedding cache under
# ordinary roles.
#
# Every agentmem function runs with the caller's rights.  alice may create
# spaces (CREATE on schema agentmem_spaces) and owns what she creates; bob
# can do with alice's space exactly what alice granted him on its table,
# and gets SQLSTATE 42501 naming the space otherwise; carol has nothing.
# The catalog cannot be used to hijack or unregister someone else's space.
# The embedding cache is not granted to PUBLIC; its limit is superuser-only.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('privileges');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'agentmem'");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION agentmem;
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	CREATE ROLE carol LOGIN;
});

# Run SQL as a role; returns (exit code, stdout, stderr).
sub as_role
{
	my ($role, $sql) = @_;
	my ($out, $err);
	my $rc = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql",
		stdout => \$out, stderr => \$err, extra_params => [ '-U', $role ]);
	return ($rc, $out, $err);
}

sub ok_as
{
	my ($role, $sql, $expected, $name) = @_;
	my ($rc, $out, $err) = as_role($role, $sql);
	is($rc, 0, "$name: succeeds") or diag($err);
	is($out, $expected, "$name: result") if defined $expected;
}

sub denied_as
{
	my ($role, $sql, $message, $name) = @_;
	my ($rc, $out, $err) = as_role($role, $sql);
	isnt($rc, 0, "$name: fails");
	like($err, qr/ERROR:\s+42501:/, "$name: SQLSTATE 42501");
	like($err, $message, "$name: message") if $message;
	return $err;
}

my $remember = q{SELECT count(*) FROM agentmem.remember('alice mem', ARRAY['x'], ARRAY['[1,2]']::vector[])};
my $recall = q{SELECT string_agg(content, ',' ORDER BY id) FROM agentmem.recall('alice mem', '[1,2]', 10)};

# ------------------------------------------------ creating spaces
denied_as('alice', q{SELECT agentmem.create_space('alice mem', 2)},
	qr/permission denied for schema agentmem_spaces/,
	'create_space without CREATE on agentmem_spaces');
$node->safe_psql('postgres', 'GRANT CREATE ON SCHEMA agentmem_spaces TO alice');
ok_as('alice', q{SELECT agentmem.create_space('alice mem', 2) IS NOT NULL}, 't',
	'create_space with CREATE on agentmem_spaces');
ok_as('alice', $remember, '1', 'the owner remembers');
ok_as('alice', $recall, 'x', 'the owner recalls');
my $table = $node->safe_psql('postgres', q{SELECT table_name FROM agentmem.spaces WHERE space = 'alice mem'});
like($table, qr/^agentmem_spaces\.s\d+_alice_mem$/, "the space's table is $table");
is($node->safe_psql('postgres', "SELECT tableowner FROM pg_tables WHERE schemaname || '.' || tablename = '$table'"),
	'alice', 'the table belongs to its creator');

# ------------------------------------------------ bob, with no grant
my $err = denied_as('bob', $recall, qr/permission denied for memory space "alice mem"/, 'recall without SELECT');
like($err, qr/DETAIL:\s+recall needs SELECT on table \Q$table\E/, 'the detail names the privilege and table');
like($err, qr/HINT:.*GRANT SELECT ON \Q$table\E TO bob;/, 'the hint shows the GRANT');
denied_as('bob', q{SELECT count(*) FROM agentmem.recall_batch('alice mem', ARRAY['[1,2]']::vector[])},
	qr/memory space "alice mem"/, 'recall_batch without SELECT');
denied_as('bob', $remember, qr/memory space "alice mem"/, 'remember without INSERT');
denied_as('bob', q{SELECT agentmem.forget('alice mem', ARRAY[1])}, qr/memory space "alice mem"/,
	'forget without DELETE');
denied_as('bob', "SELECT count(*) FROM $table", qr/permission denied for table/, 'the table itself');
denied_as('bob', q{SELECT agentmem.drop_space('alice mem')}, qr/must be owner of memory space "alice mem"/,
	'drop_space of a space of someone else');
denied_as('bob', q{SELECT agentmem.create_space('bob mem', 2)}, qr/permission denied for schema/,
	'bob may not create spaces');
# the catalog can be read, not tampered with
ok_as('bob', q{SELECT space, rows IS NULL, owner FROM agentmem.spaces}, 'alice mem|t|alice',
	'bob sees the space, not its row count');
ok_as('bob', q{DELETE FROM agentmem.space_catalog}, '', 'bob deletes from the catalog ...');
is($node->safe_psql('postgres', 'SELECT count(*) FROM agentmem.space_catalog'), '1',
	'... but row-level security kept alice\'s row');
($table =~ /^agentmem_spaces\.(.*)$/) or die;
my $relname = $1;
denied_as('bob',
	"INSERT INTO agentmem.space_catalog (name, table_name, dims, metric, m, ef_construction)"
	  . " VALUES ('hijack', '$relname', 2, 'cosine', 16, 64)",
	qr/row-level security/, "registering alice's table as bob's space");
denied_as('bob', q{UPDATE agentmem.space_catalog SET name = 'stolen'}, qr/permission denied/,
	'renaming a space in the catalog');

# ------------------------------------------------ alice grants, step by step
as_role('alice', "GRANT SELECT ON $table TO bob");
ok_as('bob', $recall, 'x', 'recall with SELECT');
ok_as('bob', q{SELECT count(*) FROM agentmem.recall_batch('alice mem', ARRAY['[1,2]', '[2,1]']::vector[], 1)},
	'2', 'recall_batch with SELECT');
ok_as('bob', q{SELECT rows FROM agentmem.spaces}, '1', 'bob now sees the row count');
$err = denied_as('bob', $remember, qr/memory space "alice mem"/, 'remember with only SELECT');
like($err, qr/HINT:.*GRANT INSERT ON \Q$table\E TO bob;/, 'the hint names the missing privilege only');
as_role('alice', "GRANT INSERT ON $table TO bob");
ok_as('bob', $remember, '1', 'remember with SELECT and INSERT');
denied_as('bob', q{SELECT agentmem.forget('alice mem', ARRAY[1])}, qr/memory space/, 'forget without DELETE');
as_role('alice', "GRANT DELETE ON $table TO bob");
ok_as('bob', q{SELECT agentmem.forget('alice mem', ARRAY[1])}, '1', 'forget with DELETE');
denied_as('carol', $recall, qr/memory space "alice mem"/, 'carol still has nothing');
as_role('alice', "REVOKE ALL ON $table FROM bob");
denied_as('bob', $recall, qr/memory space "alice mem"/, 'after REVOKE, recall fails again');
# row-level security on a space's table applies to recall
as_role('alice', "GRANT SELECT ON $table TO bob");
ok_as('alice', qq{
	SELECT count(*) FROM agentmem.remember('alice mem', ARRAY['public', 'private'],
		ARRAY['[1,1]', '[1,1.1]']::vector[], ARRAY['{"shared": true}', '{}']::jsonb[]);
	ALTER TABLE $table ENABLE ROW LEVEL SECURITY;
	CREATE POLICY shared ON $table FOR SELECT TO bob USING (metadata \@> '{"shared": true}')},
	undef, 'alice shares only some rows');
ok_as('bob', $recall, 'public', 'recall returns only the rows the policy lets bob see');
ok_as('bob', q{SELECT count(*), count(*) FILTER (WHERE content = 'public')
	FROM agentmem.recall_batch('alice mem', array_fill('[1,2]'::vector, ARRAY[40]), 10)},
	'40|40', 'and so does a recall_batch large enough for parallel workers');

# ------------------------------------------------ the embedding cache
my $get = q{SELECT count(embedding) FROM agentmem.cache_get('m', ARRAY['a'])};
my $put = q{SELECT agentmem.cache_put('m', ARRAY['a'], ARRAY['[1]']::vector[])};
$err = denied_as('bob', $get, qr/permission denied for the embedding cache/, 'cache_get without a grant');
like($err, qr/HINT:.*GRANT SELECT, INSERT, UPDATE, DELETE ON agentmem.cache, agentmem.cache_models, agentmem.cache_claims TO bob;/,
	'the hint shows the GRANT');
denied_as('bob', $put, qr/embedding cache/, 'cache_put without a grant');
denied_as('bob', q{SELECT count(*) FROM agentmem.cache_misses('m', ARRAY['a'])}, qr/embedding cache/,
	'cache_misses without a grant');
denied_as('bob', q{SELECT agentmem.cache_evict(0)}, qr/embedding cache/, 'cache_evict without a grant');
$node->safe_psql('postgres', 'GRANT SELECT ON agentmem.cache, agentmem.cache_claims TO carol');
$node->safe_psql('postgres',
	'GRANT SELECT, INSERT, UPDATE, DELETE ON agentmem.cache, agentmem.cache_models, agentmem.cache_claims TO bob');
ok_as('bob', $put, '1', 'cache_put with the writer grant');
ok_as('carol', $get, '1', 'cache_get with SELECT (no last_used refresh)');
ok_as('carol', "SET agentmem.cache_touch_interval = 0; $get", '1', '... even when one is due');
denied_as('carol', $put, qr/embedding cache/, 'cache_put with SELECT only');
ok_as('bob', q{SELECT agentmem.cache_evict(0)}, '1', 'cache_evict with the writer grant');
ok_as('carol', q{SELECT model, hits FROM agentmem.cache_stats}, 'm|2', 'everyone reads cache_stats');
denied_as('bob', q{SELECT agentmem.cache_stats_reset()}, qr/permission denied for function/,
	'cache_stats_reset is for superusers (or whom they grant it)');
denied_as('bob', q{SET agentmem.cache_max_entries = 5}, qr/permission denied to set parameter/,
	'agentmem.cache_max_entries is for superusers');

# ------------------------------------------------ dropping
denied_as('bob', q{SELECT agentmem.drop_space('alice mem')}, qr/must be owner/, 'bob cannot drop the space');
$node->safe_psql('postgres', 'DROP OWNED BY alice');
is($node->safe_psql('postgres', 'SELECT count(*) FROM agentmem.space_catalog'), '0',
	'DROP OWNED BY alice removes her spaces from the catalog');

$node->stop;
done_testing();

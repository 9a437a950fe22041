# 041_cache_herd.t: the thundering-herd protocol of the embedding cache with
# live sessions, and the cache without shared_preload_libraries.
#
# - cache_wait returns as soon as the claimer's cache_put commits, not at
#   its timeout;
# - it stops waiting when the claimer disconnects (nobody would store the
#   text), and a claim of a session that is gone is taken over;
# - of several sessions claiming the same texts at once, each text goes to
#   exactly one;
# - spaces and the cache survive pg_dump and restore;
# - without agentmem preloaded the cache works and cache_stats says how to
#   enable its counters.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('herd');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'agentmem'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION agentmem');

# ------------------------------------------------ cache_wait wakes up on the put
my $claimer = $node->background_psql('postgres');
my $waiter = $node->background_psql('postgres');
is($claimer->query_safe(q{SELECT string_agg(content, ',') FROM agentmem.cache_claim('m', ARRAY['x', 'y'])}),
	'x,y', 'the first session claims x and y');
is($waiter->query_safe(q{SELECT coalesce(string_agg(content, ','), '-') FROM agentmem.cache_claim('m', ARRAY['x', 'y', 'z'])}),
	'z', 'the second is told to embed only z');

my $t0 = time();
$waiter->query_until(qr/waiting/,
	"\\echo waiting\nSELECT string_agg(coalesce(embedding::text, 'NULL'), ';' ORDER BY ord)"
	  . " FROM agentmem.cache_wait('m', ARRAY['x', 'y'], '60 s');\n\\echo done\n");
sleep(1);
$claimer->query_safe(q{SELECT agentmem.cache_put('m', ARRAY['x', 'y'], ARRAY['[1]', '[2]']::vector[])});
my $out = $waiter->query_until(qr/done/, '');
my $elapsed = time() - $t0;
like($out, qr/^\[1\];\[2\]$/m, 'cache_wait returns both embeddings once they are put');
ok($elapsed >= 0.9 && $elapsed < 30, sprintf('it waited for the put, not for its timeout (%.1f s)', $elapsed));

# ------------------------------------------------ the claimer goes away
is($claimer->query_safe(q{SELECT string_agg(content, ',') FROM agentmem.cache_claim('m', ARRAY['w'])}),
	'w', 'the first session claims w');
$t0 = time();
$waiter->query_until(qr/waiting/,
	"\\echo waiting\nSELECT coalesce(embedding::text, 'NULL') FROM agentmem.cache_wait('m', ARRAY['w'], '60 s');\n\\echo done\n");
sleep(1);
$claimer->quit;
$out = $waiter->query_until(qr/done/, '');
$elapsed = time() - $t0;
like($out, qr/^NULL$/m, 'when the claimer disconnects, cache_wait returns NULL for w');
ok($elapsed < 30, sprintf('without waiting for its timeout (%.1f s)', $elapsed));
is($waiter->query_safe(q{SELECT string_agg(content, ',') FROM agentmem.cache_claim('m', ARRAY['w'])}),
	'w', "and the claim of the departed session is taken over");
$waiter->quit;

# ------------------------------------------------ many sessions, one claim each
my @sessions = map { $node->background_psql('postgres') } 1 .. 4;
my $texts = "ARRAY[" . join(',', map { "'t$_'" } 1 .. 40) . "]";
$_->query_until(qr/go/, "\\echo go\n") for @sessions;
my @claimed;
for my $s (@sessions)
{
	$s->{stdin} .= "SELECT coalesce(string_agg(content, ','), '-') FROM agentmem.cache_claim('n', $texts);\n\\echo done\n";
	$s->{run}->pump_nb;		# send it now: the four claims overlap
}
for my $s (@sessions)
{
	my $o = $s->query_until(qr/done/, '');
	$o =~ s/\n?done\n?//;
	push @claimed, grep { $_ ne '-' } split /,/, $o;
}
is(scalar(@claimed), 40, 'four sessions claiming the same 40 texts are handed 40 claims in all');
my %seen;
$seen{$_}++ for @claimed;
is(scalar(keys %seen), 40, 'each text went to exactly one session');
$_->quit for @sessions;

# ------------------------------------------------ dump and restore
$node->safe_psql('postgres', q{
	SELECT agentmem.create_space('kept', 2);
	SELECT agentmem.remember('kept', ARRAY['a', 'b'], ARRAY['[1,0]', '[0,1]']::vector[]);});
my $dump = "${PostgreSQL::Test::Utils::tmp_check}/agentmem_dump.sql";
$node->command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump of spaces and cache');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored'), '-f', $dump ],
	'restore into another database');
is($node->safe_psql('restored', q{
	SELECT space || ':' || rows FROM agentmem.spaces;
	SELECT string_agg(content, ',') FROM agentmem.recall('kept', '[1,0.1]', 2);
	SELECT embedding FROM agentmem.cache_get('m', ARRAY['x']);
	SELECT sum(entries) = (SELECT count(*) FROM agentmem.cache) FROM agentmem.cache_count;
	SELECT agentmem.create_space('new', 2) IS NOT NULL;}),
	"kept:2\na,b\n[1]\nt\nt",
	'after a restore, spaces, their rows, the cache and its count are back, and new spaces can be made');

$node->stop;

# ------------------------------------------------ not preloaded
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION agentmem');
is($plain->safe_psql('postgres', q{
	SELECT agentmem.cache_put('m', ARRAY['a'], ARRAY['[1]']::vector[]);
	SELECT count(embedding) FROM agentmem.cache_get('m', ARRAY['a', 'b']);
	SELECT count(*) FROM agentmem.cache_misses('m', ARRAY['a', 'b']);}),
	"1\n1\n1", 'without shared_preload_libraries the cache works');
my ($rc, $stdout, $stderr) = $plain->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT * FROM agentmem.cache_stats");
isnt($rc, 0, 'cache_stats fails without shared_preload_libraries');
like($stderr, qr/ERROR:\s+55000: the embedding cache statistics need agentmem in shared_preload_libraries/,
	'with SQLSTATE 55000 and a clear message');
like($stderr, qr/HINT:\s+Add agentmem to shared_preload_libraries/, 'and a hint');
is($plain->safe_psql('postgres', q{
	SELECT agentmem.create_space('s', 2) IS NOT NULL;
	SELECT count(*) FROM agentmem.remember('s', ARRAY['a'], ARRAY['[1,2]']::vector[]);
	SELECT content FROM agentmem.recall('s', '[1,2]');}),
	"t\n1\na", 'and so do memory spaces');
$plain->stop;

done_testing();

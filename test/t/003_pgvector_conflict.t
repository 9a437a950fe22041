# 003_pgvector_conflict.t: CREATE EXTENSION agentmem next to pgvector.
#
# agentmem and pgvector both define the type vector and the access method
# hnsw, so agentmem's install script refuses to run where an extension
# named "vector" is installed, or where the target schema already has a
# type named vector, with a duplicate_object error of its own instead of a
# catalog error half way.  pgvector is not packaged for Debian 12: the
# fixture test/fixtures/vector.control stands in for it (only its name
# matters) and is installed into the private installation's share
# directory for the duration of this test.
#
# The node does not preload agentmem: the type must work without it.
use strict;
use warnings;

use File::Copy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $test = $ENV{AGENTMEM_TEST} or BAIL_OUT('AGENTMEM_TEST is not set');

# ------------------------------------------------ install the fixture

my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
my $extdir = "$sharedir/extension";
ok(-f "$extdir/agentmem.control",
	"pg_config from PATH is the private installation ($extdir)");

my @fixtures = ('vector.control', 'vector--0.8.0.sql');
my @installed;
for my $f (@fixtures)
{
	next if -f "$extdir/$f";
	copy("$test/fixtures/$f", "$extdir/$f")
	  or BAIL_OUT("cannot install fixture $f into $extdir: $! "
		  . '(test/run.sh must make the private share directory writable)');
	push @installed, $f;
}
END { unlink map { "$extdir/$_" } @installed if defined $extdir; }

my $node = PostgreSQL::Test::Cluster->new('conflict');
$node->init;
$node->start;

# Run SQL with verbose errors; returns (exit code, stdout, stderr).
sub run_sql
{
	my ($db, $sql) = @_;
	my ($out, $err);
	my $rc = $node->psql($db, "\\set VERBOSITY verbose\n$sql",
		stdout => \$out, stderr => \$err);
	return ($rc, $out, $err);
}

# No trace of a failed CREATE EXTENSION agentmem may be left in $db.
sub no_agentmem_objects
{
	my ($db, $what) = @_;
	is( $node->safe_psql(
			$db, q{
			SELECT count(*) FROM pg_extension WHERE extname = 'agentmem'
			UNION ALL SELECT count(*) FROM pg_namespace WHERE nspname = 'agentmem'
			UNION ALL SELECT count(*) FROM pg_proc WHERE proname IN ('vector_in', 'l2_distance')
			UNION ALL SELECT count(*) FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode
					  WHERE p.proname IN ('l2_distance', 'cosine_distance')}),
		"0\n0\n0\n0",
		"$what: nothing of agentmem is left behind");
}

# ------------------------------------------------ an extension named vector

$node->safe_psql('postgres', 'CREATE DATABASE withpgvector');
$node->safe_psql('withpgvector', 'CREATE EXTENSION vector');
is($node->safe_psql('withpgvector', 'SELECT pgvector_fixture_version()'),
	'0.8.0 (agentmem test fixture)', 'the pgvector stand-in is installed');

my ($rc, $out, $err) = run_sql('withpgvector', 'CREATE EXTENSION agentmem');
isnt($rc, 0, 'with pgvector: CREATE EXTENSION agentmem fails');
like($err, qr/ERROR:\s+42710:/, 'with pgvector: SQLSTATE 42710 (duplicate_object)');
like($err, qr/ERROR:.*agentmem cannot be installed.*pgvector/,
	'with pgvector: the message names pgvector');
like($err, qr/DETAIL:.*type vector.*hnsw/, 'with pgvector: the detail says what clashes');
like($err, qr/HINT:.*DROP EXTENSION vector/, 'with pgvector: the hint says what to do');
unlike($err, qr/already exists|does not exist|cache lookup/,
	'with pgvector: no catalog error from half way through the script');
note($err);
no_agentmem_objects('withpgvector', 'with pgvector');
is($node->safe_psql('withpgvector', 'SELECT count(*) FROM pgvector_fixture'),
	'0', 'with pgvector: the pgvector stand-in is left intact');

# pgvector in another schema is still pgvector
$node->safe_psql('postgres', 'CREATE DATABASE pgvectorelsewhere');
$node->safe_psql('pgvectorelsewhere',
	'CREATE SCHEMA pgv; CREATE EXTENSION vector SCHEMA pgv');
($rc, $out, $err) = run_sql('pgvectorelsewhere', 'CREATE EXTENSION agentmem');
ok($rc != 0 && $err =~ /ERROR:\s+42710:.*pgvector/,
	'with pgvector in another schema: CREATE EXTENSION agentmem still fails with 42710')
  or diag($err);

# following the hint works
($rc, $out, $err) = run_sql('withpgvector',
	"DROP EXTENSION vector;\nCREATE EXTENSION agentmem;\nSELECT '[0,0]'::vector <-> '[3,4]';");
is($rc, 0, 'after DROP EXTENSION vector, CREATE EXTENSION agentmem works') or diag($err);
is($out, '5', 'and the vector type works there');

# ------------------------------------------------ a type named vector

$node->safe_psql('postgres', 'CREATE DATABASE withtype');
$node->safe_psql('withtype', 'CREATE TYPE vector AS (x real, y real)');

($rc, $out, $err) = run_sql('withtype', 'CREATE EXTENSION agentmem');
isnt($rc, 0, 'with a type public.vector: CREATE EXTENSION agentmem fails');
like($err, qr/ERROR:\s+42710:/, 'with a type public.vector: SQLSTATE 42710 (duplicate_object)');
like($err, qr/ERROR:.*a type named vector already exists in schema public/,
	"with a type public.vector: agentmem's own 'already exists' message");
like($err, qr/HINT:.*CREATE EXTENSION agentmem SCHEMA/,
	'with a type public.vector: the hint suggests another schema');
unlike($err, qr/type "vector" already exists|cache lookup|does not exist/,
	'with a type public.vector: not the catalog error of CREATE TYPE');
note($err);
no_agentmem_objects('withtype', 'with a type public.vector');
is($node->safe_psql('withtype', "SELECT '(1,2)'::vector::text"),
	'(1,2)', 'with a type public.vector: the existing type is left intact');

# the same for a schema given explicitly
$node->safe_psql('withtype', 'CREATE SCHEMA s1; CREATE DOMAIN s1.vector AS integer');
($rc, $out, $err) = run_sql('withtype', 'CREATE EXTENSION agentmem SCHEMA s1');
ok($rc != 0 && $err =~ /ERROR:\s+42710:.*a type named vector already exists in schema s1/,
	'with a domain s1.vector: CREATE EXTENSION agentmem SCHEMA s1 fails the same way')
  or diag($err);
no_agentmem_objects('withtype', 'with a domain s1.vector');

# following the hint works: another schema, while public.vector stays
($rc, $out, $err) = run_sql('withtype',
	"CREATE SCHEMA vec;\nCREATE EXTENSION agentmem SCHEMA vec;\n"
	  . "SELECT vec.l2_distance('[0,0]'::vec.vector, '[3,4]'::vec.vector);");
is($rc, 0, 'with a type public.vector: CREATE EXTENSION agentmem SCHEMA vec works')
  or diag($err);
is($out, '5', 'and vec.vector works there');

# ------------------------------------------------ a clean database

$node->safe_psql('postgres', 'CREATE DATABASE clean');
($rc, $out, $err) = run_sql('clean',
	"CREATE EXTENSION agentmem;\nSELECT '[1,2,3]'::vector(3)::text, "
	  . "(SELECT extversion FROM pg_extension WHERE extname = 'agentmem');");
is($rc, 0, 'in a clean database CREATE EXTENSION agentmem works') or diag($err);
is($out, '[1,2,3]|0.1.0', 'and the type and extension version are there');

# ------------------------------------------------ DROP and CREATE again

$node->safe_psql('clean', "CREATE TABLE items (id int, v vector(2)); INSERT INTO items VALUES (1, '[1,2]')");
($rc, $out, $err) = run_sql('clean', 'DROP EXTENSION agentmem');
ok($rc != 0 && $err =~ /ERROR:\s+2BP01:/,
	'DROP EXTENSION agentmem with a dependent table fails with 2BP01')
  or diag($err);

($rc, $out, $err) = run_sql('clean', 'DROP TABLE items; DROP EXTENSION agentmem');
is($rc, 0, 'DROP EXTENSION agentmem works') or diag($err);
is( $node->safe_psql(
		'clean', q{
		SELECT to_regtype('vector') IS NULL,
			   to_regnamespace('agentmem') IS NULL,
			   (SELECT count(*) FROM pg_proc WHERE proname LIKE 'vector%'),
			   (SELECT count(*) FROM pg_operator o JOIN pg_type t ON t.oid = o.oprleft
				 WHERE t.typname = 'vector'),
			   (SELECT count(*) FROM pg_opclass WHERE opcname = 'vector_ops')}),
	't|t|0|0|0',
	'DROP EXTENSION agentmem removes the type, the schema, functions, operators, opclasses');

for my $round (1 .. 2)
{
	($rc, $out, $err) = run_sql('clean',
		"CREATE EXTENSION agentmem;\n"
		  . "CREATE TABLE items (id int, v vector(2));\n"
		  . "INSERT INTO items VALUES (1, '[3,4]');\n"
		  . "SELECT v <-> '[0,0]', agentmem.distance_kernel() <> '' FROM items;\n"
		  . "DROP TABLE items;\nDROP EXTENSION agentmem;");
	is($rc, 0, "CREATE EXTENSION agentmem again after DROP works (round $round)")
	  or diag($err);
	is($out, '5|t', "and the type, operators and agentmem schema work (round $round)");
}

is($node->safe_psql('postgres', 'SELECT 1'), '1', 'server alive at the end');
$node->stop;

done_testing();

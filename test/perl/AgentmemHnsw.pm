# AgentmemHnsw.pm: helpers shared by the hnsw TAP tests (test/t/02*.t).
#
# Reading the .fvec test data, writing vectors in the text form COPY and
# the vector type read, starting a node with agentmem, and checking an
# index with agentmem.hnsw_check.
package AgentmemHnsw;

use strict;
use warnings;

use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(read_fvec vec_text remember_rows_sql write_copy_file new_node hnsw_clean
  index_count seq_count);

# read_fvec(path) -> (dim, [ [floats], ... ]): "AGMV", uint32 n, uint32 dim
# (little-endian), then n * dim float32 little-endian.
sub read_fvec
{
	my ($path) = @_;
	open(my $fh, '<:raw', $path) or die "cannot open $path: $!";
	local $/;
	my $data = <$fh>;
	close $fh;
	my ($magic, $n, $dim) = unpack('a4 V V', $data);
	die "$path: bad magic '$magic'" unless $magic eq 'AGMV';
	die "$path: size does not match $n x $dim"
	  unless length($data) == 12 + 4 * $n * $dim;
	my @vecs;
	for my $i (0 .. $n - 1)
	{
		push @vecs, [ unpack('f<' . $dim, substr($data, 12 + 4 * $i * $dim, 4 * $dim)) ];
	}
	return ($dim, \@vecs);
}

# The text form of a vector; %.9g keeps every float32 exact.
sub vec_text
{
	my ($v) = @_;
	return '[' . join(',', map { sprintf('%.9g', $_) } @$v) . ']';
}

# A random vector of $dim dimensions in [-1, 1), as vector text (perl's
# rand: a test's srand makes it repeatable).
sub random_vec
{
	my ($dim) = @_;
	return vec_text([ map { rand(2) - 1 } 1 .. $dim ]);
}

# SQL that remembers $n rows of random $dim-dimensional vectors into
# $space, content "r1" .. "rN"; it returns the count.
sub remember_rows_sql
{
	my ($space, $dim, $n) = @_;
	my $contents = join(', ', map { "'r$_'" } 1 .. $n);
	my $vectors = join(', ', map { "'" . random_vec($dim) . "'" } 1 .. $n);
	return "SELECT count(*) FROM agentmem.remember('$space', ARRAY[$contents], ARRAY[$vectors]::vector[]);";
}

# Write "id<TAB>vector" lines for COPY ... FROM; ids start at $first.
sub write_copy_file
{
	my ($path, $vecs, $first) = @_;
	$first //= 1;
	open(my $fh, '>', $path) or die "cannot write $path: $!";
	my $id = $first;
	print $fh $id++, "\t", vec_text($_), "\n" for @$vecs;
	close $fh;
	chmod 0644, $path;
	return $path;
}

# A started node with CREATE EXTENSION agentmem in database postgres.
sub new_node
{
	my ($name, @conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(@conf);
	$node->append_conf('postgresql.conf', "shared_preload_libraries = 'agentmem'");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION agentmem');
	return $node;
}

# ok() when agentmem.hnsw_check($index) returns no row; shows them if any.
sub hnsw_clean
{
	my ($node, $index, $what, $db) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $rows = $node->safe_psql($db // 'postgres',
		"SELECT kind || ' ' || coalesce(element::text, '-') || ': ' || detail FROM agentmem.hnsw_check('$index')");
	is($rows, '', "$what: hnsw_check($index) reports no problem")
	  or diag("first problems:\n" . join("\n", (split /\n/, $rows)[0 .. 9]));
	return $rows eq '';
}

# "count distinct" of the rows an index scan returns for ORDER BY v $op
# (the first row's vector), with every limit lifted (iterative scan, no
# tuple cap): every reachable element once.  Dies if the plan is not an
# index scan on $index.
sub index_count
{
	my ($node, $table, $index, $op, $db) = @_;
	$op //= '<->';
	my $q = "SELECT id FROM $table ORDER BY v $op (SELECT v FROM $table ORDER BY id LIMIT 1) LIMIT 100000000";
	my $set = "SET enable_seqscan = off; SET enable_bitmapscan = off; "
	  . "SET hnsw.iterative_scan = relaxed_order; SET hnsw.max_scan_tuples = 2000000000; "
	  . "SET hnsw.ef_search = 1000;";
	my $plan = $node->safe_psql($db // 'postgres', "$set EXPLAIN (COSTS OFF) $q");
	die "not an index scan on $index:\n$plan" unless $plan =~ /Index Scan using $index\b/;
	return $node->safe_psql($db // 'postgres',
		"$set SELECT count(*) || ' ' || count(DISTINCT id) FROM ($q) s");
}

# count(*) and count(DISTINCT id) by sequential scan, in the same form.
sub seq_count
{
	my ($node, $table, $db) = @_;
	return $node->safe_psql($db // 'postgres',
		"SET enable_indexscan = off; SET enable_bitmapscan = off; "
		  . "SELECT count(*) || ' ' || count(DISTINCT id) FROM $table WHERE v IS NOT NULL");
}

1;

# 024_hnsw_check_detects.t: agentmem.hnsw_check finds corruption.
#
# The other tests rely on hnsw_check returning no row; this one shows it
# returns rows when the structure is wrong.  With the node stopped, one
# thing at a time is changed in the index's file, following the on-disk
# format of src/hnsw.h (a 24-byte page header, 4-byte line pointers, then
# element tuples: type, level, flags, unused, heap TID, neighbour TID,
# vector; and neighbour tuples: type, level, nslots, 6-byte TIDs), the
# node is started and hnsw_check must name the problem:
#
#   a neighbour slot pointing at an offset that does not exist  -> dangling link
#   a slot pointing at its own element                          -> self link
#   the same TID in two slots of a layer                        -> duplicate link
#   an element's type byte overwritten                          -> bad tuple
#   a neighbour tuple's level changed                           -> level mismatch
#   every link to one element removed                           -> unreachable
#   the metapage's entry point moved to no element              -> bad entry point
#
# The original file is put back before each change, and the intact index
# is checked clean at the end.  Last, a corrupt entry point makes a
# remember() batch fail while a trigger's search links its queue and
# catches the error: the statement must then fail as a whole (shown to
# fail without the check in hnswbatch.c).
use strict;
use warnings;

use File::Copy;
use lib "$ENV{AGENTMEM_TEST}/perl";
use AgentmemHnsw;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use constant BLCKSZ => 8192;

my $node = new_node('detects');
$node->safe_psql(
	'postgres', q{
	CREATE TABLE t (id int, v vector(4));
	INSERT INTO t SELECT i, ARRAY[sin(i), cos(i * 1.3), sin(i * 0.7), cos(i * 2.1)]::real[]
		FROM generate_series(1, 300) i;
	CREATE INDEX t_l2 ON t USING hnsw (v vector_l2_ops) WITH (m = 4, ef_construction = 16);
});
hnsw_clean($node, 't_l2', 'the fresh index');
my $file = $node->data_dir . '/' . $node->safe_psql('postgres', "SELECT pg_relation_filepath('t_l2')");
$node->stop;
ok(-f $file, "the index file is $file");
my $saved = "$file.saved";
copy($file, $saved) or die "cannot save $file: $!";

sub read_index
{
	open(my $fh, '<:raw', $file) or die $!;
	local $/;
	my $d = <$fh>;
	close $fh;
	return $d;
}

sub write_index
{
	my ($d) = @_;
	open(my $fh, '+<:raw', $file) or die $!;
	print $fh $d;
	close $fh;
}

# The normal items of a block: [offset number, byte position in file, length].
sub items
{
	my ($d, $blk) = @_;
	my $page = substr($d, $blk * BLCKSZ, BLCKSZ);
	my $lower = unpack('v', substr($page, 12, 2));
	my @items;
	for my $i (0 .. ($lower - 24) / 4 - 1)
	{
		my $lp = unpack('V', substr($page, 24 + 4 * $i, 4));
		my ($off, $flags, $len) = ($lp & 0x7FFF, ($lp >> 15) & 3, $lp >> 17);
		push @items, [ $i + 1, $blk * BLCKSZ + $off, $len ] if $flags == 1;
	}
	return @items;
}

# a slot's TID; the top two bits of its offset are the link's verdict
sub tid_at { my ($d, $pos) = @_; my ($hi, $lo, $off) = unpack('v v v', substr($d, $pos, 6)); return (($hi << 16) | $lo, $off & 0x3FFF); }
sub tid_bytes { my ($blk, $off) = @_; return pack('v v v', $blk >> 16, $blk & 0xFFFF, $off); }

# Every element: { tid => "(b,o)", pos, level, ntid => [b, o] }; and every
# neighbour tuple by "(b,o)": { pos, level, nslots }.
sub graph
{
	my ($d) = @_;
	my (%elements, %neighbours);
	for my $blk (1 .. length($d) / BLCKSZ - 1)
	{
		for my $it (items($d, $blk))
		{
			my ($off, $pos) = @$it;
			my ($type, $level) = unpack('C C', substr($d, $pos, 2));
			if ($type == 1)
			{
				$elements{"($blk,$off)"} = { tid => [ $blk, $off ], pos => $pos, level => $level,
					ntid => [ tid_at($d, $pos + 10) ] };
			}
			elsif ($type == 2)
			{
				$neighbours{"($blk,$off)"} = { pos => $pos, level => $level,
					nslots => unpack('v', substr($d, $pos + 2, 2)) };
			}
		}
	}
	return (\%elements, \%neighbours);
}

my $orig = read_index();
my ($elements, $neighbours) = graph($orig);
is(scalar keys %$elements, 300, 'the file holds 300 element tuples');
is(scalar keys %$neighbours, 300, 'and 300 neighbour tuples');
my ($meta_entry_blk, $meta_entry_off) = (unpack('V', substr($orig, 24 + 16, 4)),
	unpack('v', substr($orig, 24 + 20, 2)));
my $entry = "($meta_entry_blk,$meta_entry_off)";
ok(exists $elements->{$entry}, "the metapage's entry point $entry is an element");

# a live element that is not the entry point, with a full layer 0
my ($victim) = grep {
	my $n = $neighbours->{ "($elements->{$_}{ntid}[0],$elements->{$_}{ntid}[1])" };
	$_ ne $entry && (tid_at($orig, $n->{pos} + 4 + 6))[1] != 0
} sort keys %$elements;
my $ve = $elements->{$victim};
my $vn = $neighbours->{"($ve->{ntid}[0],$ve->{ntid}[1])"};
note("corrupting around element $victim, neighbour tuple ($ve->{ntid}[0],$ve->{ntid}[1])");
my $slot0 = $vn->{pos} + 4;
my $slot1 = $vn->{pos} + 10;

# Apply $change to a copy of the original file, start, run hnsw_check,
# stop, and return its rows.
sub corrupt_and_check
{
	my ($change) = @_;
	my $d = $orig;
	$change->(\$d);
	write_index($d);
	$node->start;
	my $rows = $node->safe_psql('postgres',
		"SELECT kind || ' ' || coalesce(element::text, '-') || ': ' || detail FROM agentmem.hnsw_check('t_l2')");
	my $info = $node->safe_psql('postgres', "SELECT problems FROM agentmem.hnsw_info('t_l2')");
	$node->stop;
	note(join("\n", grep { defined } (split /\n/, $rows)[0 .. 4]));
	return ($rows, $info);
}

my ($rows, $problems);

($rows, $problems) = corrupt_and_check(sub { substr(${ $_[0] }, $slot0, 6) = tid_bytes($ve->{tid}[0], 999); });
like($rows, qr/^dangling link \Q$victim\E: layer 0 links to \($ve->{tid}[0],999\), not an element$/m,
	'a slot pointing at a missing offset: dangling link');
cmp_ok($problems, '>=', 1, 'hnsw_info counts the problem');

($rows) = corrupt_and_check(sub { substr(${ $_[0] }, $slot0, 6) = tid_bytes(@{ $ve->{tid} }); });
like($rows, qr/^self link \Q$victim\E: layer 0 links to itself$/m, 'a slot pointing at its own element: self link');

($rows) = corrupt_and_check(sub { substr(${ $_[0] }, $slot1, 6) = substr(${ $_[0] }, $slot0, 6); });
like($rows, qr/^duplicate link \Q$victim\E: layer 0 links twice/m, 'the same TID twice in a layer: duplicate link');

# the neighbour tuple as the element's slot: pointing at a neighbour tuple
($rows) = corrupt_and_check(sub { substr(${ $_[0] }, $slot0, 6) = tid_bytes(@{ $ve->{ntid} }); });
like($rows, qr/^dangling link \Q$victim\E: layer 0 links to \($ve->{ntid}[0],$ve->{ntid}[1]\), not an element$/m,
	'a slot pointing at a neighbour tuple: dangling link');

# a built index stores every link's verdict; both verdict bits at once is corrupt
is(unpack('v', substr($orig, $slot0 + 4, 2)) & 0xC000 ? 'verdict' : 'none', 'verdict',
	'the build stored the verdict of the first link');
($rows) = corrupt_and_check(
	sub { substr(${ $_[0] }, $slot0 + 4, 2) = pack('v', unpack('v', substr(${ $_[0] }, $slot0 + 4, 2)) | 0xC000); });
like($rows, qr/^bad verdict \Q$victim\E: layer 0 slot 0 has verdict bits 0xc000$/m,
	'a slot with both verdict bits: bad verdict');

($rows) = corrupt_and_check(sub { substr(${ $_[0] }, $ve->{pos}, 1) = pack('C', 7); });
like($rows, qr/^bad tuple \Q$victim\E: unknown tuple type 7$/m, "an element's type byte overwritten: bad tuple");

($rows) = corrupt_and_check(sub { substr(${ $_[0] }, $vn->{pos} + 1, 1) = pack('C', $vn->{level} + 1); });
like($rows, qr/^level mismatch \Q$victim\E: element level $ve->{level}, neighbour tuple level @{[ $vn->{level} + 1 ]}$/m,
	"a neighbour tuple's level changed: level mismatch");

# remove every link to the victim, in every layer of every list
($rows) = corrupt_and_check(
	sub {
		my $d = shift;
		my $want = tid_bytes(@{ $ve->{tid} });
		for my $n (values %$neighbours)
		{
			for my $s (0 .. $n->{nslots} - 1)
			{
				my $p = $n->{pos} + 4 + 6 * $s;
				substr($$d, $p, 6) = tid_bytes(0xFFFFFFFF, 0) if tid_bytes(tid_at($$d, $p)) eq $want;
			}
		}
	});
like($rows, qr/^unreachable \Q$victim\E: live element not reachable from the entry point$/m,
	'every link to an element removed: unreachable');

($rows) = corrupt_and_check(sub { substr(${ $_[0] }, 24 + 20, 2) = pack('v', 999); });
like($rows, qr/^bad entry point \($meta_entry_blk,999\): entry point is not an element$/m,
	"the metapage's entry point moved: bad entry point");

# the original file again: no problem
copy($saved, $file) or die $!;
$node->start;
hnsw_clean($node, 't_l2', 'the restored index');
is($node->safe_psql('postgres', "SELECT elements, problems FROM agentmem.hnsw_info('t_l2')"),
	'300|0', 'the restored index has its 300 elements');

# A remember() batch whose linking fails in a subtransaction that catches
# the error (a trigger's search links the queue first; the index's entry
# point is corrupt) must not commit rows its index has not linked: the
# statement fails as a whole.
$node->safe_psql(
	'postgres', q{
	SELECT agentmem.create_space('cs', 4, 'l2');
	SELECT count(*) FROM agentmem.remember('cs', ARRAY['a', 'b', 'c'],
		ARRAY['[1,0,0,0]', '[0,1,0,0]', '[0,0,1,0]']::vector[]);
	CREATE FUNCTION search_catching() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		BEGIN
			SET LOCAL enable_seqscan = off;
			EXECUTE format('SELECT id FROM %s ORDER BY embedding <-> %L LIMIT 1',
						   TG_RELID::regclass, NEW.embedding);
		EXCEPTION WHEN index_corrupted THEN
			RAISE NOTICE 'trigger caught: %', SQLERRM;
		END;
		RETURN NULL;
	END $$;
});
my $cs = $node->safe_psql('postgres', "SELECT agentmem.space_table('cs')");
$node->safe_psql('postgres',
	"CREATE TRIGGER search_catching AFTER INSERT ON $cs FOR EACH ROW EXECUTE FUNCTION search_catching()");
my $csfile = $node->data_dir . '/'
  . $node->safe_psql('postgres', "SELECT pg_relation_filepath('${cs}_embedding')");
$node->stop;
{
	open(my $fh, '+<:raw', $csfile) or die $!;
	seek($fh, 24 + 20, 0);
	print $fh pack('v', 999);	# the entry point's offset: no element there
	close $fh;
}
$node->start;
my ($rc, $out, $err) = $node->psql('postgres',
	"SELECT count(*) FROM agentmem.remember('cs', ARRAY['d', 'e'], ARRAY['[1,1,0,0]', '[0,1,1,0]']::vector[])");
isnt($rc, 0, 'remember fails when linking failed in a subtransaction that caught the error');
like($err, qr/trigger caught: hnsw index .* has an invalid entry point/, 'the trigger did catch the error');
like($err, qr/an earlier error interrupted linking the rows of this statement/,
	'and the statement then fails with a clear error');
is($node->safe_psql('postgres', "SELECT count(*) FROM $cs"), '3', 'no row of the failed call is stored');
$node->stop;
done_testing();

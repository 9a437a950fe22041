# 001_distance_kernels.t: every distance kernel variant the CPU supports
# against the scalar reference and a double-precision computation.
#
# Compiles test/test_distance.c with src/distance.c alone (the kernels
# have no PostgreSQL dependency) and turns the TAP the program prints into
# this test's own results, so a crash half way is a failure too.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;

my $src  = $ENV{AGENTMEM_SRC}  or BAIL_OUT('AGENTMEM_SRC is not set');
my $test = $ENV{AGENTMEM_TEST} or BAIL_OUT('AGENTMEM_TEST is not set');
my $cc   = $ENV{CC} || 'cc';
my $dir  = PostgreSQL::Test::Utils::tempdir('distance');
my $exe  = "$dir/test_distance";

my ($stdout, $stderr);
my $built = IPC::Run::run(
	[
		$cc, '-O2', '-Wall', '-Wextra', '-Werror',
		"-I$src/src", "$test/test_distance.c", "$src/src/distance.c",
		'-lm', '-o', $exe
	],
	'>', \$stdout, '2>', \$stderr);
ok($built, 'test_distance.c and src/distance.c compile with -Wall -Wextra -Werror')
  or diag($stdout . $stderr);
BAIL_OUT('cannot build test_distance') unless $built;

IPC::Run::run([$exe], '>', \$stdout, '2>', \$stderr);
my $status = $?;

my ($plan, $seen, $failed) = (undef, 0, 0);
for my $line (split /\n/, $stdout)
{
	if ($line =~ /^ok (\d+) # skip (.*)$/)
	{
		$seen++;
	  SKIP: { skip($2, 1); }
	}
	elsif ($line =~ /^(not )?ok (\d+) - (.*)$/)
	{
		$seen++;
		$failed++ if $1;
		ok(!$1, $3);
	}
	elsif ($line =~ /^1\.\.(\d+)$/)
	{
		$plan = $1;
	}
	elsif ($line =~ /^# (.*)$/)
	{
		note($1);
	}
	elsif ($line =~ /^Bail out!(.*)$/)
	{
		fail("test_distance bailed out:$1");
	}
	else
	{
		fail("unexpected output line from test_distance: $line");
	}
}
diag("stderr: $stderr") if $stderr ne '';

ok(defined $plan && $plan == $seen,
	'test_distance ran to the end (' . ($plan // 'no plan') . " planned, $seen seen)");
is($status >> 8, $failed ? 1 : 0,
	'test_distance exit status agrees with its results');
is($status & 127, 0, 'test_distance was not killed by a signal');
cmp_ok($seen, '>=', 60, 'test_distance ran a meaningful number of checks');

done_testing();

# 030_histogram.t: the log-linear histogram and the per-statement table.
#
# Compiles test/test_histogram.c with src/histogram.c and src/stattable.c
# alone (pure C, no PostgreSQL) and turns the TAP the program prints into
# this test's own results, so a crash half way is a failure too.  The
# program checks percentiles against exact ones of random and adversarial
# samples (all equal, bimodal, heavy-tailed, one sample, 10^7 samples),
# merge exactness, the bounds and the statement table's eviction.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;

my $src  = $ENV{AGENTMEM_SRC}  or BAIL_OUT('AGENTMEM_SRC is not set');
my $test = $ENV{AGENTMEM_TEST} or BAIL_OUT('AGENTMEM_TEST is not set');
my $cc   = $ENV{CC} || 'cc';
my $dir  = PostgreSQL::Test::Utils::tempdir('histogram');
my $exe  = "$dir/test_histogram";

my ($stdout, $stderr);
my $built = IPC::Run::run(
	[
		$cc, '-O2', '-Wall', '-Wextra', '-Werror',
		"-I$src/src", "$test/test_histogram.c", "$src/src/histogram.c",
		"$src/src/stattable.c", '-lm', '-o', $exe
	],
	'>', \$stdout, '2>', \$stderr);
ok($built,
	'test_histogram.c, src/histogram.c and src/stattable.c compile with -Wall -Wextra -Werror')
  or diag($stdout . $stderr);
BAIL_OUT('cannot build test_histogram') unless $built;

IPC::Run::run([$exe], '>', \$stdout, '2>', \$stderr);
my $status = $?;

my ($plan, $seen, $failed) = (undef, 0, 0);
for my $line (split /\n/, $stdout)
{
	if ($line =~ /^(not )?ok (\d+) - (.*)$/)
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
	else
	{
		fail("unexpected output line from test_histogram: $line");
	}
}
diag("stderr: $stderr") if $stderr ne '';

ok(defined $plan && $plan == $seen,
	'test_histogram ran to the end (' . ($plan // 'no plan') . " planned, $seen seen)");
is($status >> 8, $failed ? 1 : 0, 'test_histogram exit status agrees with its results');
is($status & 127, 0, 'test_histogram was not killed by a signal');
cmp_ok($seen, '>=', 40, 'test_histogram ran a meaningful number of checks');

done_testing();

#!/usr/bin/perl
# tests/integration/proc/child.pl - a proc child for the integration tests
# of proc handlers (tests/integration/21-proc.c and after), on the Perl
# runtime of examples/proc/TaskwheelProc.pm: handlers that behave, and
# handlers that misbehave in the ways the worker must survive (crash,
# hang, ignore signals, write bad frames). See proto/PROTOCOL.md 15.
#
# The environment may ask for a bad child: TW_TEST_CHILD=nohello (never
# says hello), =exit (exits before its hello), =v2 (says hello with
# version 2), =echo (offers "echo", which the worker has built in).
use strict;
use warnings;
use POSIX ();
use TaskwheelProc;

my $mode = $ENV{TW_TEST_CHILD} // '';
if ($mode eq 'nohello') {
    sleep 3600;
} elsif ($mode eq 'exit') {
    print STDERR "bad child: exiting before hello\n";
    exit 7;
} elsif ($mode eq 'v2') {
    open(my $out, '>&', \*STDOUT) or die;
    my $b = TaskwheelProc::encode({ev => 'hello', v => 2, handlers => ['x']});
    syswrite($out, pack('N', length $b) . $b);
    sleep 3600;
} elsif ($mode eq 'echo') {
    TaskwheelProc::run('echo' => sub { $_[1] });
}

TaskwheelProc::run(
    # Arguments back as the result, and the call's details.
    'pl.echo' => sub { my ($ctx, @a) = @_; return @a == 1 ? $a[0] : \@a },
    'pl.add'  => sub { my ($ctx, $a, $b) = @_; return $a + $b },
    'pl.info' => sub {
        my ($ctx) = @_;
        return {pid => $$ + 0, task => $ctx->task, attempt => $ctx->attempt,
                kind => $ctx->kind, to => $ctx->timeout_ms,
                proc => $ENV{TASKWHEEL_PROC}};
    },
    # Crashes on its first attempt, succeeds on the next.
    'pl.flaky' => sub {
        my ($ctx) = @_;
        POSIX::_exit(4) if $ctx->attempt == 1;
        return 'ok on attempt ' . $ctx->attempt;
    },
    # A handler error with a traceback.
    'pl.fail' => sub { my ($ctx, $why) = @_; deep($why // 'bad input') },
    # Dies mid-task: some words on stderr, then exit 3.
    'pl.crash' => sub {
        my ($ctx, $how) = @_;
        print STDERR "crashing now, as asked\n";
        kill 'KILL', $$ if ($how // '') eq 'kill';
        POSIX::_exit(3);
    },
    # Sleeps, looking for a cancel frame: a cancel ends it at once.
    'pl.sleep' => sub {
        my ($ctx, $secs) = @_;
        print STDERR "pl.sleep: sleeping $secs s\n";
        $ctx->sleep($secs);
        return 'slept';
    },
    # Ignores the cancel frame and SIGTERM: only SIGKILL ends it.
    'pl.hang' => sub {
        $SIG{TERM} = 'IGNORE';
        print STDERR "hanging on purpose\n";
        select(undef, undef, undef, 3600);
    },
    # Ignores the cancel frame but dies on SIGTERM.
    'pl.deaf' => sub {
        print STDERR "not listening\n";
        select(undef, undef, undef, 3600);
    },
    # Lines on stderr, and a stray print on stdout, which the runtime
    # sends to stderr too.
    'pl.stderr' => sub {
        my ($ctx, $tag) = @_;
        print STDERR "stderr line from $tag\n";
        print "stdout line from $tag\n";
        return $tag;
    },
    # The task channel: open, a message, a request, close.
    'pl.chan' => sub {
        my ($ctx, $q) = @_;
        $ctx->open('hello');
        $ctx->send(1);
        my $r = $ctx->request($q, 5000);
        $ctx->close;
        return "got $r";
    },
    # A station: emits its input and returns it plus one, 20 ms later.
    'pl.count' => sub {
        my ($ctx, $n) = @_;
        $ctx->sleep(0.02);
        $ctx->emit($n);
        return $n + 1;
    },
    # A station counting the n2s messages it received.
    'pl.n2scount' => [sub {
        my ($ctx, $n) = @_;
        $ctx->sleep(0.05);
        return $n + scalar(my @m = $ctx->n2s);
    }, 'n2s'],
    # A station writing every n2s message it takes to the trace file
    # "collected" in $TW_PY_TRACE, one line each: "pid message iteration".
    'pl.collect' => [sub {
        my ($ctx, $n) = @_;
        my @m = $ctx->n2s;
        if (@m) {
            open(my $fh, '>>', "$ENV{TW_PY_TRACE}/collected") or die "$!\n";
            my $it = $ctx->iteration;
            syswrite($fh, join('', map { "$$ $_ $it\n" } @m));
            close $fh;
        }
        return $n;
    }, 'n2s'],
    # A station in next mode "handler": set_next, and stop at a limit.
    'pl.next' => sub {
        my ($ctx, $n, $limit) = @_;
        $ctx->set_next([$n * 2, $limit]);
        $ctx->stop if $n * 2 >= $limit;
        return 'ignored';
    },
    # Bad frames, as the argument says.
    'pl.bad' => sub {
        my ($ctx, $what) = @_;
        if ($what eq 'big') {
            TaskwheelProc::send_raw(pack('N', 0x7fffffff));
        } elsif ($what eq 'text') {
            TaskwheelProc::send_raw("Hello, this is not a frame\n");
        } elsif ($what eq 'notmap') {
            my $b = TaskwheelProc::encode([1, 2, 3]);
            TaskwheelProc::send_raw(pack('N', length $b) . $b);
        } elsif ($what eq 'noev') {
            my $b = TaskwheelProc::encode({r => 1});
            TaskwheelProc::send_raw(pack('N', length $b) . $b);
        } elsif ($what eq 'unknown') {
            TaskwheelProc::send_frame({ev => 'bogus', x => 1});
            return 'survived';
        } elsif ($what eq 'twice') {
            TaskwheelProc::send_frame({ev => 'result', r => 1});
            return 2;
        }
        select(undef, undef, undef, 3600);
    },
);

sub deep { inner(@_) }
sub inner { die "$_[0]\n" }

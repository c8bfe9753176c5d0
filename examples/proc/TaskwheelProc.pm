# examples/proc/TaskwheelProc.pm - taskwheel handlers written in Perl.
#
# A proc child (proto/PROTOCOL.md section 15) in one file, using only
# modules of Debian's perl-base, which every Debian system has installed
# (dpkg needs it): no CPAN module, no compiler. It shows that the process
# handler protocol is small: msgpack framing, a hello, then one call at a
# time.
#
#     use TaskwheelProc;
#     TaskwheelProc::run(
#         'wc'    => sub { my ($ctx, $text) = @_; scalar split ' ', $text },
#         'slow'  => sub { my ($ctx, $s) = @_; $ctx->sleep($s); 'done' },
#     );
#
# and `taskwheel-worker --proc 'perl -I examples/proc examples/proc/example.pl'`.
#
# A handler gets a context and the task's arguments: the elements of an
# array, or the one value that is not an array. Its return value is the
# result; `die` fails the task with the message and a Perl stack trace.
# The context gives the call's details (task, attempt, sid, iteration,
# deadline), the task channel (open, send, request, close: S90-S93), the
# station calls (set_next, stop, emit, n2s) and cancellation: sleep() and
# check() die with "cancelled" once the worker has sent a cancel frame.
# A handler registered as [sub, 'n2s'] receives its stations' n2s messages
# (PROTOCOL.md 15.3 flags); those n2s() has not returned when the handler
# ends go back to the worker for the station's next iteration (15.10).
#
# Values map to msgpack as follows: undef is nil, a number created as a
# number is an int or a float, any other scalar a str (UTF-8), an array or
# hash ref an array or map, TaskwheelProc::bin($bytes) a bin,
# TaskwheelProc::true/false the booleans (which decode to those too).
package TaskwheelProc;

use strict;
use warnings;
no warnings 'experimental::builtin';

use Carp ();
use IO::Handle;
use IO::Select;
use POSIX ();
use Scalar::Util qw(looks_like_number);

our $VERSION = '1';
use constant PROTOCOL => 1;
use constant MAX_FRAME => 32 * 1024 * 1024;

my $HAS_BUILTIN = defined &builtin::created_as_number;
my $TICKS = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;

# Seconds on a monotonic clock, to 1/100 s (perl-base has no Time::HiRes).
sub now { my ($rt) = POSIX::times(); return $rt / $TICKS }

# ---------------------------------------------------------------- values

package TaskwheelProc::Boolean {
    use overload
        'bool' => sub { ${ $_[0] } },
        '0+'   => sub { ${ $_[0] } },
        '""'   => sub { ${ $_[0] } ? 'true' : 'false' },
        fallback => 1;
}

package TaskwheelProc::Bin {
}

package TaskwheelProc;

my $TRUE = bless \(my $t = 1), 'TaskwheelProc::Boolean';
my $FALSE = bless \(my $f = 0), 'TaskwheelProc::Boolean';

sub true  { $TRUE }
sub false { $FALSE }
sub bin   { my $b = shift; bless \$b, 'TaskwheelProc::Bin' }

# --------------------------------------------------------------- msgpack

sub _is_number {
    my $v = shift;
    return builtin::created_as_number($v) if $HAS_BUILTIN;
    return looks_like_number($v) && $v =~ /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?$/;
}

sub encode {
    my $v = shift;
    return "\xc0" unless defined $v;
    if (my $r = ref $v) {
        if ($r eq 'ARRAY') {
            my $n = @$v;
            my $h = $n < 16 ? pack('C', 0x90 | $n)
                  : $n < 65536 ? pack('Cn', 0xdc, $n) : pack('CN', 0xdd, $n);
            return join '', $h, map { encode($_) } @$v;
        }
        if ($r eq 'HASH') {
            my $n = keys %$v;
            my $h = $n < 16 ? pack('C', 0x80 | $n)
                  : $n < 65536 ? pack('Cn', 0xde, $n) : pack('CN', 0xdf, $n);
            return join '', $h,
                map { (_str("$_"), encode($v->{$_})) } sort keys %$v;
        }
        if ($r eq 'TaskwheelProc::Boolean') {
            return $$v ? "\xc3" : "\xc2";
        }
        if ($r eq 'TaskwheelProc::Bin') {
            my $n = length $$v;
            my $h = $n < 256 ? pack('CC', 0xc4, $n)
                  : $n < 65536 ? pack('Cn', 0xc5, $n) : pack('CN', 0xc6, $n);
            return $h . $$v;
        }
        return _str("$v");
    }
    if (_is_number($v)) {
        if ($v == int($v) && abs($v) < 2**63) {
            my $i = int($v);
            return pack('C', $i) if $i >= 0 && $i < 128;
            return pack('c', $i) if $i < 0 && $i >= -32;
            return pack('CC', 0xcc, $i) if $i >= 0 && $i < 256;
            return pack('Cn', 0xcd, $i) if $i >= 0 && $i < 65536;
            return pack('CN', 0xce, $i) if $i >= 0 && $i < 2**32;
            return pack('CQ>', 0xcf, $i) if $i >= 0;
            return pack('Cc', 0xd0, $i) if $i >= -128;
            return pack('Cs>', 0xd1, $i) if $i >= -32768;
            return pack('Cl>', 0xd2, $i) if $i >= -2**31;
            return pack('Cq>', 0xd3, $i);
        }
        return pack('Cd>', 0xcb, $v);
    }
    return _str($v);
}

sub _str {
    my $s = shift;
    utf8::encode($s) if utf8::is_utf8($s);
    my $n = length $s;
    my $h = $n < 32 ? pack('C', 0xa0 | $n)
          : $n < 256 ? pack('CC', 0xd9, $n)
          : $n < 65536 ? pack('Cn', 0xda, $n) : pack('CN', 0xdb, $n);
    return $h . $s;
}

# Decode the value at $$buf[$$pos]; dies on malformed input.
sub _decode {
    my ($buf, $pos) = @_;
    die "truncated msgpack\n" if $$pos >= length $$buf;
    my $b = ord substr($$buf, $$pos++, 1);
    my $take = sub {
        my $n = shift;
        die "truncated msgpack\n" if $$pos + $n > length $$buf;
        my $s = substr($$buf, $$pos, $n);
        $$pos += $n;
        return $s;
    };
    my $str = sub { my $s = $take->(shift); utf8::decode($s); $s };
    my $arr = sub { [map { _decode($buf, $pos) } 1 .. shift] };
    my $map = sub {
        my %h;
        for (1 .. shift) {
            my $k = _decode($buf, $pos);
            $h{$k} = _decode($buf, $pos);
        }
        \%h;
    };
    return $b if $b < 0x80;
    return $map->($b & 0x0f) if $b < 0x90;
    return $arr->($b & 0x0f) if $b < 0xa0;
    return $str->($b & 0x1f) if $b < 0xc0;
    return $b - 256 if $b >= 0xe0;
    return undef if $b == 0xc0;
    return $FALSE if $b == 0xc2;
    return $TRUE if $b == 0xc3;
    return $take->(unpack 'C', $take->(1)) if $b == 0xc4;
    return $take->(unpack 'n', $take->(2)) if $b == 0xc5;
    return $take->(unpack 'N', $take->(4)) if $b == 0xc6;
    return unpack('f>', $take->(4)) if $b == 0xca;
    return unpack('d>', $take->(8)) if $b == 0xcb;
    return unpack('C', $take->(1)) if $b == 0xcc;
    return unpack('n', $take->(2)) if $b == 0xcd;
    return unpack('N', $take->(4)) if $b == 0xce;
    return unpack('Q>', $take->(8)) if $b == 0xcf;
    return unpack('c', $take->(1)) if $b == 0xd0;
    return unpack('s>', $take->(2)) if $b == 0xd1;
    return unpack('l>', $take->(4)) if $b == 0xd2;
    return unpack('q>', $take->(8)) if $b == 0xd3;
    return $str->(unpack 'C', $take->(1)) if $b == 0xd9;
    return $str->(unpack 'n', $take->(2)) if $b == 0xda;
    return $str->(unpack 'N', $take->(4)) if $b == 0xdb;
    return $arr->(unpack 'n', $take->(2)) if $b == 0xdc;
    return $arr->(unpack 'N', $take->(4)) if $b == 0xdd;
    return $map->(unpack 'n', $take->(2)) if $b == 0xde;
    return $map->(unpack 'N', $take->(4)) if $b == 0xdf;
    my %ext = (0xd4 => 1, 0xd5 => 2, 0xd6 => 4, 0xd7 => 8, 0xd8 => 16);
    if (exists $ext{$b}) {       # extension types: skipped, read as undef
        $take->(1 + $ext{$b});
        return undef;
    }
    if ($b >= 0xc7 && $b <= 0xc9) {
        my $n = unpack $b == 0xc7 ? 'C' : $b == 0xc8 ? 'n' : 'N',
            $take->($b == 0xc7 ? 1 : $b == 0xc8 ? 2 : 4);
        $take->(1 + $n);
        return undef;
    }
    die sprintf "bad msgpack byte 0x%02x\n", $b;
}

sub decode {
    my $buf = shift;
    my $pos = 0;
    my $v = _decode(\$buf, \$pos);
    die "bytes after the msgpack value\n" if $pos != length $buf;
    return $v;
}

# ---------------------------------------------------------------- frames

my ($IN, $OUT);      # the frame streams: stdin, and stdout's old fd
my $INBUF = '';
my @PENDING;         # frames read while a handler waited for another

# Move the frame stream off fd 1, so that a print in a handler goes to
# stderr (the worker's log) instead of corrupting the frames.
sub _setup {
    open($OUT, '>&', \*STDOUT) or die "dup stdout: $!\n";
    open(STDOUT, '>&', \*STDERR) or die "stdout to stderr: $!\n";
    STDOUT->autoflush(1);
    STDERR->autoflush(1);
    $IN = \*STDIN;
    binmode $IN;
    binmode $OUT;
}

sub send_frame {
    my $map = shift;
    my $body = encode($map);
    my $data = pack('N', length $body) . $body;
    while (length $data) {
        my $n = syswrite($OUT, $data);
        die "the worker is gone: $!\n" unless defined $n;
        substr($data, 0, $n, '');
    }
}

# Write raw bytes to the frame stream (tests of the worker's defences).
sub send_raw {
    my $data = shift;
    syswrite($OUT, $data);
}

# The next frame from the worker, waiting at most $timeout seconds (undef:
# forever). Returns a hash ref, undef on timeout; exits at end of input.
sub _read_frame {
    my $timeout = shift;
    my $sel = IO::Select->new($IN);
    while (1) {
        if (length $INBUF >= 4) {
            my $n = unpack 'N', $INBUF;
            die "frame of $n bytes from the worker\n"
                if $n == 0 || $n > MAX_FRAME;
            if (length $INBUF >= 4 + $n) {
                my $body = substr($INBUF, 4, $n);
                substr($INBUF, 0, 4 + $n, '');
                my $f = decode($body);
                die "a frame that is not a map\n" unless ref $f eq 'HASH';
                return $f;
            }
        }
        return undef if defined $timeout && !$sel->can_read($timeout);
        my $got = sysread($IN, $INBUF, 65536, length $INBUF);
        exit 0 if !$got;    # end of stdin: the worker is gone
    }
}

# ---------------------------------------------------------------- calls

package TaskwheelProc::Context;

sub new {
    my ($class, $frame, $n2s) = @_;
    return bless {
        f => $frame, cancelled => 0, next_id => 1, n2s => [], taken => 0,
        wants_n2s => $n2s,
    }, $class;
}

sub kind     { $_[0]{f}{kind} }
sub handler  { $_[0]{f}{h} }
sub task     { $_[0]{f}{task} }
sub attempt  { $_[0]{f}{at} }
sub sid      { $_[0]{f}{sid} }
sub iteration { $_[0]{f}{it} }
sub timeout_ms { $_[0]{f}{to} }
# Seconds left before the worker cancels the call, undef without timeout.
sub time_left {
    my $dl = $_[0]{f}{dl};
    return undef unless $dl;
    my $left = $dl / 1000 - time;
    return $left > 0 ? $left : 0;
}

# Handle a frame that came while the handler runs.
sub _frame {
    my ($self, $f) = @_;
    my $ev = $f->{ev} // '';
    if ($ev eq 'cancel') {
        # One naming another task crossed that task's outcome.
        $self->{cancelled} = 1
            if !defined $f->{task} || ($self->task // -1) == $f->{task};
    } elsif ($ev eq 'n2s') {
        push @{ $self->{n2s} }, [$f->{seq} // 0, $f->{d}];
    } elsif ($ev eq 'error' && !exists $f->{id}) {
        $self->{last_error} = $f->{err};
    } elsif ($ev eq 'resp' || $ev eq 'error') {
        $self->{answers}{ $f->{id} // '' } = $f;
    }
    # call, shutdown cannot come while a call runs; others are ignored.
}

# Read what the worker sent, waiting up to $secs (0: just look).
sub _poll {
    my ($self, $secs) = @_;
    my $until = TaskwheelProc::now() + $secs;
    while (1) {
        my $f = TaskwheelProc::_read_frame($secs > 0 ? $secs : 0);
        last unless $f;
        $self->_frame($f);
        last if $self->{cancelled};
        $secs = $until - TaskwheelProc::now();
        $secs = 0 if $secs < 0;
    }
}

# Die with "cancelled" if the worker cancelled the call.
sub check {
    my $self = shift;
    $self->_poll(0);
    die "cancelled\n" if $self->{cancelled};
}

sub cancelled {
    my $self = shift;
    $self->_poll(0);
    return $self->{cancelled};
}

# Sleep, but wake up and die at once on a cancel.
sub sleep {
    my ($self, $secs) = @_;
    my $until = TaskwheelProc::now() + $secs;
    while (1) {
        my $left = $until - TaskwheelProc::now();
        last if $left <= 0;
        my $f = TaskwheelProc::_read_frame($left);
        $self->_frame($f) if $f;
        die "cancelled\n" if $self->{cancelled};
    }
}

# The task channel (S90-S93).
sub open  { my ($s, $d) = @_; TaskwheelProc::send_frame({ev => 'open', d => $d}) }
sub send  { my ($s, $d) = @_; TaskwheelProc::send_frame({ev => 'msg', d => $d}) }
sub close { TaskwheelProc::send_frame({ev => 'close'}) }

# Ask the submitter and wait for the reply; dies with the error's name
# (ETIMEDOUT, ECLOSEREQ, ...) if there is none.
sub request {
    my ($self, $d, $timeout_ms) = @_;
    my $id = $self->{next_id}++;
    my %f = (ev => 'req', d => $d, id => $id);
    $f{timeout} = $timeout_ms if $timeout_ms;
    TaskwheelProc::send_frame(\%f);
    while (!exists $self->{answers}{$id}) {
        my $got = TaskwheelProc::_read_frame(undef);
        $self->_frame($got);
        die "cancelled\n" if $self->{cancelled};
    }
    my $a = delete $self->{answers}{$id};
    die "$a->{err}\n" if $a->{ev} eq 'error';
    return $a->{d};
}

# Stations.
sub set_next { my ($s, $d) = @_; TaskwheelProc::send_frame({ev => 'next', d => $d}) }
sub stop     { TaskwheelProc::send_frame({ev => 'stop'}) }
sub emit     { my ($s, $d) = @_; TaskwheelProc::send_frame({ev => 'emit', d => $d}) }

# The n2s messages received so far (and now), oldest first. The outcome
# tells the worker the last one returned here; it gives the others to the
# station's next iteration (PROTOCOL.md 15.10).
sub n2s {
    my $self = shift;
    $self->_poll(0);
    my @m = @{ $self->{n2s} };
    $self->{n2s} = [];
    $self->{taken} = $m[-1][0] if @m;
    return map { $_->[1] } @m;
}

package TaskwheelProc;

# Run one call frame through its handler; send its outcome.
sub _call {
    my ($handlers, $f) = @_;
    my $entry = $handlers->{ $f->{h} // '' };
    my $ctx = TaskwheelProc::Context->new($f, $entry && $entry->{n2s});
    my $args = $f->{a};
    my @args = ref $args eq 'ARRAY' ? @$args : defined $args ? ($args) : ();
    my $trace;
    my $r = eval {
        die "no handler '$f->{h}' in this child\n" unless $entry;
        local $SIG{__DIE__} = sub { $trace = Carp::longmess('') };
        $entry->{code}->($ctx, @args);
    };
    my %out;
    if (my $err = $@) {
        chomp(my $msg = ref $err ? "$err" : $err);
        my ($line) = split /\n/, $msg;
        $line //= 'error';
        $line =~ s/ at \S+ line \d+\.$//; # the trace says where
        $trace //= '';
        $trace =~ s/^\s+//;
        %out = (ev => 'error', msg => $line, tb => $trace);
    } else {
        %out = (ev => 'result', r => $r);
    }
    # A worker that takes back untaken n2s messages says so in the call.
    $out{n2s} = $ctx->{taken} if $f->{n2s};
    send_frame(\%out);
}

# Offer %handlers (name => sub, or name => [sub, flags...]) to the worker
# and serve calls until it says shutdown or goes away. Never returns.
sub run {
    my %spec = @_;
    my %handlers;
    my %flags;
    while (my ($name, $h) = each %spec) {
        my ($code, @fl) = ref $h eq 'ARRAY' ? @$h : ($h);
        $handlers{$name} = {code => $code, n2s => scalar grep { $_ eq 'n2s' } @fl};
        $flags{$name} = [@fl] if @fl;
    }
    $SIG{PIPE} = 'IGNORE';
    _setup();
    my $want = $ENV{TASKWHEEL_PROC} // PROTOCOL;
    die "this child speaks proc protocol " . PROTOCOL
        . ", the worker $want\n" if $want < PROTOCOL;
    my %hello = (ev => 'hello', v => PROTOCOL,
                 handlers => [sort keys %handlers],
                 rt => "perl $^V, TaskwheelProc $VERSION");
    $hello{flags} = \%flags if %flags;
    send_frame(\%hello);
    while (1) {
        my $f = _read_frame(undef);
        my $ev = $f->{ev} // '';
        if ($ev eq 'call') {
            _call(\%handlers, $f);
        } elsif ($ev eq 'shutdown') {
            exit 0;
        }
        # Anything else (a cancel that crossed an outcome, answers for a
        # finished call, frames of a later version) is ignored.
    }
}

1;

#!/usr/bin/perl
# examples/proc/example.pl - handlers written in Perl, run by a worker in
# long-lived children (proto/PROTOCOL.md 15):
#
#     taskwheel-worker --proc 'perl -I examples/proc examples/proc/example.pl'
#     taskwheel submit wc '"the quick brown fox"' --wait         # 4
#     taskwheel submit primes 100000 --timeout 5 --wait          # 9592
#     taskwheel station add clock perl.clock 0 --next result --interval 1
#     taskwheel station tail clock
#
# Every handler gets a context ($ctx, see TaskwheelProc.pm) and the task's
# arguments; what it returns is the result, what it dies with the error.
use strict;
use warnings;
use TaskwheelProc;

TaskwheelProc::run(
    # Words in a text.
    'wc' => sub {
        my ($ctx, $text) = @_;
        my @w = split ' ', $text // '';
        return scalar @w;
    },

    # Primes up to n, by trial division: long enough to be worth
    # cancelling, so it looks for a cancel every 10000 numbers.
    'primes' => sub {
        my ($ctx, $n) = @_;
        die "primes: give a number up to 10000000\n"
            unless defined $n && $n =~ /^\d+$/ && $n <= 10_000_000;
        my $count = 0;
        NUM: for my $i (2 .. $n) {
            $ctx->check if $i % 10000 == 0;
            for (my $d = 2; $d * $d <= $i; $d++) {
                next NUM if $i % $d == 0;
            }
            $count++;
        }
        return $count;
    },

    # Ask the submitter a question over the task channel (S90-S93):
    # taskwheel submit perl.ask '"your name?"' --wait --respond '"Ada"'
    'perl.ask' => sub {
        my ($ctx, $question) = @_;
        $ctx->open('asking');
        my $answer = $ctx->request($question, 10000);
        $ctx->close;
        return "hello, $answer";
    },

    # A station: each iteration emits the time (s2n) and counts; n2s
    # messages ("reset") set the count back to 0.
    'perl.clock' => [sub {
        my ($ctx, $n) = @_;
        for my $m ($ctx->n2s) {
            $n = 0 if defined $m && $m eq 'reset';
        }
        $ctx->emit(scalar gmtime);
        return $n + 1;
    }, 'n2s'],
);

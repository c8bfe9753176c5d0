/*  common/utf8.h - the one UTF-8 validator.
 *
 *  Text crosses taskwheel in several places that must agree on what is
 *  well-formed: error messages travel as msgpack STR and clients turn them
 *  into JSON; the exec and stream handlers choose STR or BIN for a
 *  program's output; and names a peer chooses (worker and handler names,
 *  hosts, tags, routing ids) end up in log lines and on terminals, so the
 *  broker takes only clean text for them (broker/gate.h, and the codec's
 *  clean fields in proto/proto.h). Everything here rests on one decoder
 *  of a sequence (RFC 3629): no overlong forms, no surrogates, nothing
 *  above U+10FFFF. Pure functions, any thread.
 */
#ifndef TW_UTF8_H
#define TW_UTF8_H

#include <stddef.h>

/* 1 if the `n` bytes at `p` are well-formed UTF-8, else 0. */
int tw_utf8_valid(const void *p, size_t n);

/* 1 if the `n` bytes at `p` are clean text: well-formed UTF-8 without
 * control characters (C0, DEL, C1; NUL included) or the bidirectional
 * overrides that can disguise a line (U+202A to U+202E, U+2066 to
 * U+2069); else 0. The empty string is clean. */
int tw_utf8_clean(const void *p, size_t n);

/* Replace, in place, every byte of `s[0..n)` that is not part of a
 * well-formed sequence with '?'. */
void tw_utf8_scrub(char *s, size_t n);

#endif /* TW_UTF8_H */

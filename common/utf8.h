/*  common/utf8.h - UTF-8 checks for text that crosses a boundary.
 *
 *  Error messages travel as msgpack STR and clients turn them into JSON,
 *  so they must be valid UTF-8; the worker's exec and stream handlers
 *  also decide between STR and BIN for a program's output by this test,
 *  and the broker's JSON writer (proto/jsonw.h) walks strings with
 *  tw_utf8_seq. Pure functions, any thread.
 */
#ifndef TW_UTF8_H
#define TW_UTF8_H

#include <stddef.h>

/* The length (1 to 4) of the well-formed UTF-8 sequence that starts at
 * p[0], reading at most `n` bytes (n >= 1), or 0 if none starts there
 * (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
size_t tw_utf8_seq(const void *p, size_t n);

/* 1 if the `n` bytes at `p` are well-formed UTF-8 (no overlongs, no
 * surrogates, nothing above U+10FFFF), else 0. */
int tw_utf8_valid(const void *p, size_t n);

/* Write into hdr[0..5) the msgpack header for the `n` bytes at `p`: STR
 * if they are valid UTF-8 (tw_utf8_valid), else BIN, in the shortest
 * form. Returns the header's length, 1 to 5. */
size_t tw_utf8_pack_header(unsigned char *hdr, const void *p, size_t n);

/* Replace, in place, every byte of `s[0..n)` that is not part of a
 * well-formed sequence with '?'. */
void tw_utf8_scrub(char *s, size_t n);

/* 1 if the `n` bytes at `p` are clean text: well-formed UTF-8 without
 * control characters (C0, DEL, C1) or bidirectional overrides (U+202A to
 * U+202E, U+2066 to U+2069), the rule the broker applies to the names in
 * a HELLO (broker/gate.h); else 0. For names the worker is told by
 * others (proc children) before it announces them. */
int tw_utf8_clean(const void *p, size_t n);

#endif /* TW_UTF8_H */

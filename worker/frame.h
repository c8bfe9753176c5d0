/*  worker/frame.h - length-prefixed msgpack frames on a pipe.
 *
 *  The worker talks to programs it runs over plain pipes in one format:
 *  an exec program on its task channel (fd 3, worker/exec_chan.h) and a
 *  proc child on stdin and stdout (worker/proc.h, proto/PROTOCOL.md 15).
 *  A frame is
 *
 *      +----------------------+-------------------------------------+
 *      | length, 4 octets, BE | one msgpack map: str keys, str "ev" |
 *      +----------------------+-------------------------------------+
 *
 *  This module is the one reader and writer of that format. The reader
 *  collects bytes as they come and hands out complete frame bodies; the
 *  parser checks a body and finds its keys in place (proto/mpwalk.h), so
 *  a value such as a task's result is passed on without being decoded
 *  and encoded again; the writer builds one frame or several in a tw_enc_t
 *  and gives its buffer to one uv_write, so frames for one program that
 *  are ready together cost one system call. The reader and parser do no
 *  I/O and can be tested alone. Loop thread only.
 */
#ifndef TW_WORKER_FRAME_H
#define TW_WORKER_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "proto/proto.h"

/* A parsed frame body: the map and its "ev", pointing into the bytes it
 * was parsed from (which must outlive it). */
typedef struct {
    const unsigned char *p;
    size_t n;
    const char *ev;
    size_t evlen;
} tw_frame_t;

/* Check that p[0..n) is exactly one msgpack map whose keys are all str
 * and which holds a str "ev"; fill `f`. Returns 0, or TW_EPROTO with a
 * short reason in *why (static text). */
int tw_frame_parse(tw_frame_t *f, const void *p, size_t n, const char **why);

/* 1 if the frame's "ev" is `ev`. */
int tw_frame_is(const tw_frame_t *f, const char *ev);

/* The raw msgpack value of key `key`, or NULL (*len untouched). */
const void *tw_frame_get(const tw_frame_t *f, const char *key, size_t *len);

/* The bytes of str value `key` (not NUL-terminated), or NULL when absent
 * or not a str. */
const char *tw_frame_str(const tw_frame_t *f, const char *key, size_t *len);

/* Value `key` as a uint: 1 and *v set, or 0 (absent or not a uint). */
int tw_frame_uint(const tw_frame_t *f, const char *key, uint64_t *v);

/* Reading ------------------------------------------------------------------ */

typedef struct {
    char *buf; /* bytes not yet handed out */
    size_t len, cap;
    size_t max;   /* the largest body accepted */
    uint32_t bad; /* the length refused by the last TW_E2BIG */
} tw_frame_reader_t;

/* A reader accepting bodies of 1..max bytes. */
void tw_frame_reader_init(tw_frame_reader_t *r, size_t max);
void tw_frame_reader_free(tw_frame_reader_t *r);

/* Room for the next read (a libuv alloc callback's buffer). */
uv_buf_t tw_frame_reader_room(tw_frame_reader_t *r);

/* A complete body: return 0 to go on, anything else to stop. */
typedef int (*tw_frame_fn)(void *arg, const char *body, size_t len);

/* `n` bytes were read into the room: call `fn` for every complete body,
 * in order. Returns 0 (an incomplete frame waits for more bytes), the
 * first non-zero return of `fn`, or TW_E2BIG for a length of 0 or over
 * `max` (kept in r->bad). After a non-zero return the reader is empty:
 * the stream cannot be trusted any more. */
int tw_frame_reader_feed(tw_frame_reader_t *r, size_t n, tw_frame_fn fn,
                         void *arg);

/* Describe a refused length for a log line: its value and, when its four
 * bytes are printable, those as text (a program printing to the frame
 * stream). Writes a NUL-terminated string of at most `cap` bytes. */
void tw_frame_bad_length(uint32_t len, char *out, size_t cap);

/* Writing ------------------------------------------------------------------ */

/* Empty `e` and reserve the four length bytes: encode the map next. */
void tw_frame_begin(tw_enc_t *e);

/* Append the four length bytes of a new frame to the frames `e` holds:
 * encode its map next, then call tw_frame_end with the offset returned,
 * where the frame starts. */
size_t tw_frame_open(tw_enc_t *e);

/* Patch the length of the frame starting at offset `at` of `e`: the
 * bytes from there to the end of `e` are its body. */
void tw_frame_end(tw_enc_t *e, size_t at);

/* Patch the length of the frame in `e` (begun with tw_frame_begin) and
 * write it to `s`, handing over the buffer (no copy); `e` is left empty
 * and reusable. Returns 0, or a libuv error when nothing could be
 * written (the frame is dropped). */
int tw_frame_send(tw_enc_t *e, uv_stream_t *s);

/* Write every frame `e` holds (each ended with tw_frame_end) to `s` in
 * one uv_write, as tw_frame_send does. */
int tw_frame_write(tw_enc_t *e, uv_stream_t *s);

#endif /* TW_WORKER_FRAME_H */

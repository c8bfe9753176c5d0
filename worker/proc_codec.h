/*  worker/proc_codec.h - the frames of the process handler protocol.
 *
 *  proto/PROTOCOL.md 15 defines what the worker and a proc child say to
 *  each other in the frames of worker/frame.h. This module writes the
 *  worker's frames (call, cancel, n2s, shutdown), each appended to an
 *  encoder that may hold more for the same child, and reads the parts of
 *  the child's frames that need more than a key lookup (hello, error).
 *  The task's arguments are spliced into a call frame as they came, and
 *  nothing here allocates but the encoder's buffer, so the frames of the
 *  worked example in PROTOCOL.md 15.8 can be checked byte for byte
 *  (tests/unit/test_worker_frame.c). No I/O; any thread.
 */
#ifndef TW_WORKER_PROC_CODEC_H
#define TW_WORKER_PROC_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"
#include "worker/frame.h"

#define TW_PROC_VERSION 1             /* hello "v", TASKWHEEL_PROC */
#define TW_PROC_MAX_FRAME (32u << 20) /* a frame's body, both ways */
#define TW_PROC_MAX_NAMES 1024
#define TW_PROC_MAX_NAME 128
#define TW_PROC_MAX_ERR 65535 /* the task error text an error gives */

/* What a call frame says. */
typedef struct {
    int station;   /* kind: 0 "task", 1 "station" */
    const char *h; /* handler name */
    size_t hlen;
    uint64_t task;   /* task: its id */
    uint64_t at;     /* task: its attempt */
    const char *sid; /* station: its id */
    size_t sidlen;
    uint64_t it;   /* station: the iteration's number */
    uint64_t to;   /* timeout in ms; 0: none (then no "to", "dl") */
    uint64_t dl;   /* when the worker cancels, ms since the epoch */
    int n2s;       /* station: "n2s": true, the worker takes back the n2s
                      messages the outcome does not acknowledge (15.10) */
    const void *a; /* the arguments, one msgpack value; NULL: nil */
    size_t alen;
} tw_proc_call_t;

/* Append a whole frame (its length included) to the frames `e` holds,
 * ready for tw_frame_write. */
void tw_proc_enc_call(tw_enc_t *e, const tw_proc_call_t *c);
void tw_proc_enc_n2s(tw_enc_t *e, uint64_t seq, const void *d, size_t len);
/* A frame with only "ev": "cancel", "shutdown". */
void tw_proc_enc_bare(tw_enc_t *e, const char *ev);
/* The cancel of task `task`'s call: {"ev": "cancel", "task": task}; a
 * bare cancel (the running call) when `task` is 0. */
void tw_proc_enc_cancel(tw_enc_t *e, uint64_t task);

/* A hello, read in place (pointers into the frame). */
typedef struct {
    uint64_t v;
    size_t n;
    const char *names[TW_PROC_MAX_NAMES];
    size_t lens[TW_PROC_MAX_NAMES];
    int flags[TW_PROC_MAX_NAMES]; /* TW_PP_F_* */
    const char *rt;               /* NULL if absent */
    size_t rtlen;
    uint64_t pipeline; /* calls it takes at once: 1 if absent (15.9) */
} tw_proc_hello_t;

/* Read hello frame `f`. Returns 0, or TW_EPROTO with the reason in `err`
 * (no uint "v", "handlers" not an array of 1..1024 names of 1..128
 * bytes of clean text (tw_utf8_clean), a name twice, "flags" not a map
 * of arrays of str, "pipeline" not a uint of 1 or more). The version is
 * not checked here. */
int tw_proc_parse_hello(const tw_frame_t *f, tw_proc_hello_t *out, char *err,
                        size_t errlen);

/* The task error text of error frame `f`: "msg", then "\n" and "tb" if
 * given, cut to `cap` - 1 bytes and NUL-terminated ("error" if "msg" is
 * missing). Returns its length. */
size_t tw_proc_error_text(const tw_frame_t *f, char *out, size_t cap);

#endif /* TW_WORKER_PROC_CODEC_H */

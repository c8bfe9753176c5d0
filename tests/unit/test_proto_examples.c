/*  tests/unit/test_proto_examples.c - every worked example of
 *  proto/PROTOCOL.md, replayed against the codec.
 *
 *  The examples are read from PROTOCOL.md when the test runs, so they
 *  cannot drift from the codec unnoticed. An example is a hex dump inside
 *  a ``` block, in one of three forms:
 *
 *      X: NAME    frame 0: 54 57 01 CC         a message sent by X, which
 *                 frame 1 (N octets):          is B (the broker), W (a
 *        hex ...  annotation                   worker), C (a client), or
 *                                              on the peer socket of a
 *                                              pair (17) A (the active),
 *                                              P (the passive) or X
 *                                              (either); no "X:" means
 *                                              any sender
 *      NAME ...   frame 0: 54 57 01 CC   frame 1: HEX    (a short one)
 *      status: frame 0 "TOPIC"                 a status message (8)
 *              frame 1 (N octets):
 *      frame 0 (N octets): hex ...             the frames as the broker's
 *      frame 1 (4 octets): 54 57 01 CC         ROUTER receives them, the
 *      frame 2 (N octets): hex ...             routing id first
 *
 *  A hex line is the two-digit hex tokens at its start; the annotation
 *  after them is free text. Each frame must hold exactly the octets its
 *  "(N octets)" announces. Then, for a command:
 *
 *    - the codec decodes it (tw_msg_decode: header, types, sizes, the
 *      required fields of the command and of each item);
 *    - the command is the one the line names and may travel from that
 *      sender (TW_PROTO_COMMANDS' directions);
 *    - every key of the body and of each item is a field the codec knows
 *      (an unknown key would be silently ignored by receivers, so in an
 *      example it is a typo);
 *    - re-encoded by msgpack-c (the shortest form of every value, which is
 *      what taskwheel's encoders write), it gives back the same bytes,
 *      except that an "items" array may be an array32, as batches are
 *      written (4.2).
 *
 *  The document also gives each command's syntax, one line a form:
 *
 *      B: TASKS {items: [{id, h, a, at, ep, to?}, ...]}
 *
 *  A key without '?' is always sent, so every example of that command
 *  from that sender must hold it (in its body, or in each item). Where a
 *  command has several forms, only the keys every form requires count;
 *  alternatives ("a | b") and elided lists ("[...]") require nothing.
 *
 *  A status message's body must be one map whose first key is "pseq" and
 *  last two "tseq" and "ts" (8; a welcome ends with "tseq"), re-encoded to
 *  the same bytes. The real document must
 *  give no problem and hold at least S_MIN_EXAMPLES examples; a few broken
 *  documents show that each check can fail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "proto/proto.h"
#include "tests/unit/support/files.h"

/* PROTOCOL.md holds 27 today; fewer means the parser lost some. */
#define S_MIN_EXAMPLES 25
#define S_MAX_FRAME 4096

/* One example as read from the document. */
typedef struct {
    int line;       /* of its first line */
    char who;       /* 'B', 'W', 'C', a pair's 'A', 'P', 'X', '*' (any),
                     * 'S' (status), 'R' (ROUTER) */
    char name[64];  /* the command named on the line, or the topic */
    unsigned char f[3][S_MAX_FRAME];
    size_t len[3];  /* octets read */
    size_t want[3]; /* octets announced; (size_t)-1 if not announced */
    int nframes;
} s_ex_t;

/* Is `c` a sender an example or a syntax line may name? */
static int
s_sender(char c)
{
    return c != '\0' && strchr("BWCAPX", c) != NULL;
}

/* Is `c` a broker of a pair speaking to its peer (PROTOCOL.md 17)? */
static int
s_peer(char c)
{
    return c == 'A' || c == 'P' || c == 'X';
}

/* The keys a syntax line requires: the body's and each item's. */
#define S_MAX_KEYS 16
typedef struct {
    char k[S_MAX_KEYS][16];
    int n;
    int known; /* 0: the line says nothing about these keys */
} s_keys_t;

typedef struct {
    char who;
    char name[32];
    s_keys_t body, item;
} s_syntax_t;

#define S_MAX_SYNTAX 128
typedef struct {
    int examples;
    int problems;
    char last[256]; /* the last problem, for the tests of the checks */
    s_syntax_t syn[S_MAX_SYNTAX];
    int nsyn;
} s_tally_t;

static void
s_problem(s_tally_t *t, const s_ex_t *ex, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
s_problem(s_tally_t *t, const s_ex_t *ex, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->last, sizeof t->last, fmt, ap);
    va_end(ap);
    fprintf(stderr, "PROTOCOL.md:%d: %c %s: %s\n", ex->line, ex->who,
            ex->name, t->last);
    t->problems++;
}

/* ---- reading ----------------------------------------------------------- */

static int
s_hexval(int c)
{
    return isdigit(c) ? c - '0' : isxdigit(c) ? tolower(c) - 'a' + 10 : -1;
}

/* Append the two-digit hex tokens at the start of `p` to frame k of `ex`;
 * stops at the first other token. */
static void
s_hex(s_ex_t *ex, int k, const char *p)
{
    for (;;) {
        while (*p == ' ') {
            p++;
        }
        if (s_hexval(p[0]) < 0 || s_hexval(p[1]) < 0 ||
            (p[2] != ' ' && p[2] != '\0')) {
            return;
        }
        if (ex->len[k] < S_MAX_FRAME) {
            ex->f[k][ex->len[k]] =
                (unsigned char)(s_hexval(p[0]) << 4 | s_hexval(p[1]));
        }
        ex->len[k]++;
        p += 2;
    }
}

static void s_check(s_tally_t *t, s_ex_t *ex);

/* The required keys (no '?') of the comma-separated list `p`, which ends
 * at the '}' closing it or at the end of the line. A key with a value
 * ("op: \"add\"") counts by its name; alternatives ("name | wid") and
 * "..." require nothing. The list of "items" goes to `item`. */
static void
s_syntax_keys(const char *p, s_keys_t *body, s_keys_t *item)
{
    body->known = 1;
    int depth = 0;
    const char *tok = p;
    for (;; p++) {
        if (*p == '{' || *p == '[') {
            depth++;
        } else if ((*p == '}' || *p == ']') && depth > 0) {
            depth--;
        } else if ((*p == ',' && depth == 0) || *p == '}' || !*p) {
            while (*tok == ' ') {
                tok++;
            }
            size_t n = strspn(tok, "abcdefghijklmnopqrstuvwxyz_");
            size_t toklen = (size_t)(p - tok);
            int alt = memchr(tok, '|', toklen) != NULL;
            if (n && n < 16 && tok[n] != '?' && !alt && body->n < S_MAX_KEYS) {
                snprintf(body->k[body->n++], 16, "%.*s", (int)n, tok);
            }
            if (n == 5 && !memcmp(tok, "items", 5) && item &&
                !strncmp(tok + n, ": [{", 4) && !alt) {
                s_syntax_keys(tok + n + 4, item, NULL);
            }
            if (*p != ',') {
                return;
            }
            tok = p + 1;
        }
    }
}

/* Keep the keys both `a` and `b` require in `a`. */
static void
s_keys_meet(s_keys_t *a, const s_keys_t *b)
{
    if (!b->known) {
        a->n = 0;
        return;
    }
    int n = 0;
    for (int i = 0; i < a->n; i++) {
        for (int j = 0; j < b->n; j++) {
            if (!strcmp(a->k[i], b->k[j])) {
                memcpy(a->k[n++], a->k[i], 16);
                break;
            }
        }
    }
    a->n = n;
}

/* A syntax line "X: NAME {...}" inside a block: record what it requires,
 * merged with the other forms of the same command from the same sender. */
static void
s_syntax_line(s_tally_t *t, const char *line)
{
    while (*line == ' ') {
        line++;
    }
    char name[32];
    int used = 0;
    if (!s_sender(*line) || line[1] != ':' ||
        sscanf(line + 2, " %31[A-Z]%n", name, &used) != 1) {
        return;
    }
    const char *p = line + 2 + used;
    while (*p == ' ') {
        p++;
    }
    if (*p != '{') {
        return;
    }
    s_syntax_t s;
    memset(&s, 0, sizeof s);
    s.who = *line;
    snprintf(s.name, sizeof s.name, "%s", name);
    s_syntax_keys(p + 1, &s.body, &s.item);
    for (int i = 0; i < t->nsyn; i++) {
        if (t->syn[i].who == s.who && !strcmp(t->syn[i].name, s.name)) {
            s_keys_meet(&t->syn[i].body, &s.body);
            s_keys_meet(&t->syn[i].item, &s.item);
            return;
        }
    }
    if (t->nsyn < S_MAX_SYNTAX) {
        t->syn[t->nsyn++] = s;
    }
}

/* Read every example of `doc` (NUL-terminated) and check each. */
static s_tally_t
s_check_doc(const char *doc)
{
    static s_tally_t t;
    memset(&t, 0, sizeof t);
    s_ex_t *ex = NULL;
    int in_block = 0, k = -1, lineno = 0;
    char line[1024];
    /* First every syntax line, wherever it stands. */
    for (const char *p = doc; *p;) {
        size_t n = strcspn(p, "\n");
        snprintf(line, sizeof line, "%.*s", (int)n, p);
        p += n + (p[n] == '\n');
        if (strncmp(line, "```", 3) == 0) {
            in_block = !in_block;
        } else if (in_block) {
            s_syntax_line(&t, line);
        }
    }
    in_block = 0;
    const char *p = doc;
    while (*p) {
        size_t n = strcspn(p, "\n");
        snprintf(line, sizeof line, "%.*s", (int)n, p);
        p += n + (p[n] == '\n');
        lineno++;
        if (strncmp(line, "```", 3) == 0) {
            if (ex) {
                s_check(&t, ex);
                free(ex);
                ex = NULL;
            }
            in_block = !in_block;
            k = -1;
            continue;
        }
        if (!in_block) {
            continue;
        }
        const char *f0 = strstr(line, "frame 0: ");
        const char *ft = strstr(line, "frame 0 \"");
        const char *fn = strstr(line, "frame ");
        unsigned fk = 0, octets = 0;
        int counted = fn && sscanf(fn, "frame %u (%u octets):", &fk,
                                   &octets) == 2;
        if (f0 || ft || (counted && fk == 0)) {
            /* A new example. */
            if (ex) {
                s_check(&t, ex);
                free(ex);
            }
            ex = calloc(1, sizeof *ex);
            assert_non_null(ex);
            ex->line = lineno;
            for (int i = 0; i < 3; i++) {
                ex->want[i] = (size_t)-1;
            }
            const char *w = line;
            while (*w == ' ') {
                w++;
            }
            if (ft) {
                ex->who = 'S';
                sscanf(ft, "frame 0 \"%63[^\"]\"", ex->name);
            } else if (!f0) {
                ex->who = 'R';
                snprintf(ex->name, sizeof ex->name, "as received");
            } else if (s_sender(*w) && w[1] == ':') {
                ex->who = *w;
                sscanf(w + 2, " %63s", ex->name);
            } else {
                ex->who = '*';
                sscanf(w, "%63s", ex->name);
            }
            ex->nframes = 1;
            if (f0) {
                s_hex(ex, 0, f0 + 9);
                ex->want[0] = 4;
                const char *inl = strstr(line, "frame 1: ");
                if (inl) {
                    s_hex(ex, 1, inl + 9);
                    ex->want[1] = ex->len[1];
                    ex->nframes = 2;
                }
                k = -1;
                if (!counted) {
                    continue;
                }
            }
        }
        if (!ex) {
            continue;
        }
        if (counted) {
            /* Commands and status messages number their body frame 1;
             * the ROUTER form lists its frames 0, 1 and 2. */
            k = (int)fk;
            if (k > 2) {
                s_problem(&t, ex, "frame %d?", k);
                k = -1;
                continue;
            }
            ex->want[k] = octets;
            if (k + 1 > ex->nframes) {
                ex->nframes = k + 1;
            }
            s_hex(ex, k, strchr(fn, ':') + 1);
        } else if (k >= 0) {
            s_hex(ex, k, line);
        }
    }
    if (ex) {
        s_problem(&t, ex, "the ``` block does not end");
        free(ex);
    }
    return t;
}

/* ---- checking ---------------------------------------------------------- */

/* msgpack-c's encoding of `o`, where the array of the top-level key
 * "items" is written as an array32 when `items32`. */
static void
s_repack(const msgpack_object *o, int items32, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (o->type != MSGPACK_OBJECT_MAP) {
        msgpack_pack_object(&pk, *o);
        return;
    }
    msgpack_pack_map(&pk, o->via.map.size);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        msgpack_pack_object(&pk, kv->key);
        if (items32 && kv->key.type == MSGPACK_OBJECT_STR &&
            kv->key.via.str.size == 5 &&
            !memcmp(kv->key.via.str.ptr, "items", 5) &&
            kv->val.type == MSGPACK_OBJECT_ARRAY) {
            unsigned char hdr[5] = {0xdd};
            uint32_t n = kv->val.via.array.size;
            for (int b = 0; b < 4; b++) {
                hdr[1 + b] = (unsigned char)(n >> (24 - 8 * b));
            }
            msgpack_sbuffer_write(sb, (const char *)hdr, 5);
            for (uint32_t j = 0; j < n; j++) {
                msgpack_pack_object(&pk, kv->val.via.array.ptr[j]);
            }
        } else {
            msgpack_pack_object(&pk, kv->val);
        }
    }
}

/* 1 if `body` holds the "items" key followed by an array32 header. */
static int
s_items32(const unsigned char *body, size_t len)
{
    static const unsigned char pat[] = {0xa5, 'i', 't', 'e', 'm', 's', 0xdd};
    for (size_t i = 0; i + sizeof pat <= len; i++) {
        if (!memcmp(body + i, pat, sizeof pat)) {
            return 1;
        }
    }
    return 0;
}

/* The body re-encodes to itself (with its "items" array32, if any). */
static void
s_check_canonical(s_tally_t *t, const s_ex_t *ex, const msgpack_object *o,
                  const unsigned char *body, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    s_repack(o, s_items32(body, len), &sb);
    if (sb.size != len || memcmp(sb.data, body, len) != 0) {
        size_t at = 0;
        while (at < len && at < sb.size &&
               (unsigned char)sb.data[at] == body[at]) {
            at++;
        }
        s_problem(t, ex,
                  "not in the shortest encoding: re-encoded it is %zu "
                  "octets, not %zu, and differs from octet %zu on",
                  sb.size, len, at);
    }
    msgpack_sbuffer_destroy(&sb);
}

/* 1 if `k` is the string `name`. */
static int
s_key(const msgpack_object *k, const char *name)
{
    size_t len = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == len &&
           memcmp(k->via.str.ptr, name, len) == 0;
}

/* 1 if the map `o` has the string key `key`. */
static int
s_has_key(const msgpack_object *o, const char *key)
{
    for (uint32_t i = 0; o->type == MSGPACK_OBJECT_MAP && i < o->via.map.size;
         i++) {
        if (s_key(&o->via.map.ptr[i].key, key)) {
            return 1;
        }
    }
    return 0;
}

/* The keys the command's syntax lines require are there. */
static void
s_check_required(s_tally_t *t, const s_ex_t *ex, const char *name,
                 const msgpack_object *root, const tw_msg_t *m)
{
    char who = ex->who == 'R' ? 'C' : ex->who;
    for (int i = 0; i < t->nsyn; i++) {
        const s_syntax_t *s = &t->syn[i];
        int same = s->who == who || (s->who == 'X' && s_peer(who));
        if (!same || strcmp(s->name, name) != 0) {
            continue;
        }
        for (int j = 0; j < s->body.n; j++) {
            if (!s_has_key(root, s->body.k[j])) {
                s_problem(t, ex, "no \"%s\", which its syntax line says "
                                 "is always sent", s->body.k[j]);
            }
        }
        for (size_t it = 0; it < m->nitems; it++) {
            const msgpack_object *o = &m->f[TW_F_ITEMS]->via.array.ptr[it];
            for (int j = 0; j < s->item.n; j++) {
                if (!s_has_key(o, s->item.k[j])) {
                    s_problem(t, ex, "item %zu has no \"%s\", which its "
                                     "syntax line says is always sent",
                              it, s->item.k[j]);
                }
            }
        }
    }
}

/* Count the non-NULL entries of `f`. */
static size_t
s_known(const msgpack_object *const *f, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        k += f[i] != NULL;
    }
    return k;
}

static void
s_check_command(s_tally_t *t, const s_ex_t *ex, const unsigned char *hdr,
                size_t hlen, const unsigned char *body, size_t blen)
{
    tw_msg_t m;
    int rc = tw_msg_decode(&m, hdr, hlen, body, blen);
    if (rc != 0) {
        s_problem(t, ex, "the codec refuses it: %s (%s)", tw_err_name(rc),
                  tw_strerror(rc));
        return;
    }
    const char *name = tw_proto_cmd_name(m.cmd);
    if (ex->who != 'R' && strcmp(ex->name, name) != 0) {
        s_problem(t, ex, "the header says %s", name);
    }
    int dirs = tw_proto_cmd_dirs(m.cmd);
    int from = ex->who == 'B'   ? TW_B2W | TW_B2C
               : ex->who == 'W' ? TW_W2B
               : ex->who == 'C' || ex->who == 'R' ? TW_C2B
               : s_peer(ex->who)                  ? TW_B2B
                                                  : dirs;
    if (!(dirs & from)) {
        s_problem(t, ex, "%s does not travel from %c", name, ex->who);
    }
    const msgpack_object *root = &m.up.data;
    if (s_known(m.f, TW_F__COUNT) != root->via.map.size) {
        s_problem(t, ex, "the body has a key the codec does not know");
    }
    for (size_t i = 0; i < m.nitems; i++) {
        const msgpack_object *it = &m.f[TW_F_ITEMS]->via.array.ptr[i];
        if (s_known(m.items[i].f, TW_I__COUNT) != it->via.map.size) {
            s_problem(t, ex, "item %zu has a key the codec does not know",
                      i);
        }
    }
    s_check_required(t, ex, name, root, &m);
    s_check_canonical(t, ex, root, body, blen);
    tw_msg_release(&m);
}

static void
s_check_status(s_tally_t *t, const s_ex_t *ex, const unsigned char *body,
               size_t blen)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    if (msgpack_unpack_next(&up, (const char *)body, blen, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        off != blen || up.data.type != MSGPACK_OBJECT_MAP ||
        up.data.via.map.size < 3) {
        s_problem(t, ex, "the body is not one map");
        msgpack_unpacked_destroy(&up);
        return;
    }
    const msgpack_object_map *map = &up.data.via.map;
    int welcome = strncmp(ex->name, "welcome.", 8) == 0;
    uint32_t n = map->size;
    if (!s_key(&map->ptr[0].key, "pseq") ||
        !s_key(&map->ptr[n - 1 - !welcome].key, "tseq") ||
        (!welcome && !s_key(&map->ptr[n - 1].key, "ts"))) {
        s_problem(t, ex, "the first key is not \"pseq\" or the last not "
                         "\"tseq\", \"ts\"");
    }
    s_check_canonical(t, ex, &up.data, body, blen);
    msgpack_unpacked_destroy(&up);
}

static void
s_check(s_tally_t *t, s_ex_t *ex)
{
    t->examples++;
    for (int k = 0; k < ex->nframes; k++) {
        if (ex->want[k] == (size_t)-1 && !(ex->who == 'S' && k == 0)) {
            s_problem(t, ex, "frame %d is missing", k);
            return;
        }
        if (ex->want[k] != (size_t)-1 && ex->len[k] != ex->want[k]) {
            s_problem(t, ex, "frame %d holds %zu octets, not the %zu it "
                             "announces", k, ex->len[k], ex->want[k]);
            return;
        }
    }
    switch (ex->who) {
    case 'S':
        if (ex->nframes != 2 || !ex->name[0]) {
            s_problem(t, ex, "a status message is a topic and a body");
            return;
        }
        s_check_status(t, ex, ex->f[1], ex->len[1]);
        break;
    case 'R':
        if (ex->nframes != 3 || ex->len[0] == 0 || ex->f[0][0] == 0) {
            s_problem(t, ex, "a routing id (not starting with a zero "
                             "octet), a header and a body are expected");
            return;
        }
        s_check_command(t, ex, ex->f[1], ex->len[1], ex->f[2], ex->len[2]);
        break;
    default:
        if (ex->nframes != 2) {
            s_problem(t, ex, "a header and a body are expected");
            return;
        }
        s_check_command(t, ex, ex->f[0], ex->len[0], ex->f[1], ex->len[1]);
        break;
    }
}

/* ---- tests ------------------------------------------------------------- */

static void
test_protocol_examples(void **state)
{
    (void)state;
    char *doc = tw_suite_read_file(TW_SOURCE_DIR "/proto/PROTOCOL.md", NULL);
    s_tally_t t = s_check_doc(doc);
    free(doc);
    printf("PROTOCOL.md: %d worked examples, %d command forms, %d "
           "problem(s)\n", t.examples, t.nsyn, t.problems);
    for (int i = 0; i < t.nsyn; i++) {
        printf("  %c: %-9s body:", t.syn[i].who, t.syn[i].name);
        for (int j = 0; j < t.syn[i].body.n; j++) {
            printf(" %s", t.syn[i].body.k[j]);
        }
        printf("; each item:");
        for (int j = 0; j < t.syn[i].item.n; j++) {
            printf(" %s", t.syn[i].item.k[j]);
        }
        printf("\n");
    }
    assert_int_equal(t.problems, 0);
    assert_true(t.examples >= S_MIN_EXAMPLES);
    assert_true(t.nsyn >= 20);
}

/* Each check can fail: one broken example per check, and what it is
 * told. */
static void
test_broken_examples(void **state)
{
    (void)state;
    static const struct {
        const char *doc;
        const char *why;
    } bad[] = {
        /* announces more octets than it shows */
        {"```\nW: READY   frame 0: 54 57 01 03\n"
        "           frame 1 (10 octets):\n"
        "  81 a6 63 72 65 64 69 74  01   \"credit\": 1\n```\n",
         "not the 10 it announces"},
        /* a uint in three octets where one does */
        {"```\nW: READY   frame 0: 54 57 01 03\n"
        "           frame 1 (11 octets):\n"
        "  81 a6 63 72 65 64 69 74  cd 00 01   \"credit\": 1\n```\n",
         "not in the shortest encoding"},
        /* a typo in a key: "credt" */
        {"```\nW: READY   frame 0: 54 57 01 03\n"
         "           frame 1 (16 octets):\n"
         "  82 a6 63 72 65 64 69 74  01  a5 63 72 65 64 74  01\n```\n",
         "a key the codec does not know"},
        /* the header is another command than the line says */
        {"```\nW: DONE    frame 0: 54 57 01 03\n"
        "           frame 1 (9 octets):\n"
        "  81 a6 63 72 65 64 69 74  01\n```\n",
         "the header says READY"},
        /* READY does not travel from the broker */
        {"```\nB: READY   frame 0: 54 57 01 03\n"
        "           frame 1 (9 octets):\n"
        "  81 a6 63 72 65 64 69 74  01\n```\n",
         "does not travel from B"},
        /* TASKS without the required "a" in its item */
        {"```\nB: TASKS   frame 0: 54 57 01 04\n"
         "           frame 1 (24 octets):\n"
         "  81 a5 69 74 65 6d 73 dd 00 00 00 01\n"
         "    82 a2 69 64 01 a1 68 a4 65 63 68 6f\n```\n",
         "the codec refuses it: EPROTO"},
        /* an item without "ep", which the syntax line requires */
        {"```\nB: TASKS {items: [{id, h, a, at, ep, to?}, ...]}\n```\n"
         "```\nB: TASKS   frame 0: 54 57 01 04\n"
         "           frame 1 (33 octets):\n"
         "  81 a5 69 74 65 6d 73 dd 00 00 00 01\n"
         "    84 a2 69 64 01 a1 68 a4 65 63 68 6f\n"
         "       a1 61 c4 01 c0 a2 61 74 01\n```\n",
         "item 0 has no \"ep\""},
        /* REPL travels only between the brokers of a pair */
        {"```\nW: REPL    frame 0: 54 57 01 1b\n"
         "           frame 1 (16 octets):\n"
         "  83 a2 68 61 01 a3 73 65 71 01 a3 6f 70 73 c4 00\n```\n",
         "does not travel from W"},
        /* a passive's RACK without the "seq" that either broker's
         * syntax line requires */
        {"```\nX: RACK {seq}\n```\n"
         "```\nP: RACK    frame 0: 54 57 01 1c\n"
         "           frame 1 (1 octets):\n"
         "  80\n```\n",
         "no \"seq\""},
        /* a status body that does not end with "tseq", "ts" */
        {"```\nstatus: frame 0 \"stats\"\n"
         "        frame 1 (16 octets):\n"
         "  83 a4 70 73 65 71 01 a1 78 01 a4 74 73 65 71 01\n```\n",
         "the last not \"tseq\", \"ts\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_tally_t t = s_check_doc(bad[i].doc);
        printf("broken example %zu: %s\n", i, t.last);
        assert_int_equal(t.examples, 1);
        assert_int_equal(t.problems, 1);
        assert_non_null(strstr(t.last, bad[i].why));
    }
    /* And a good one passes. */
    s_tally_t t = s_check_doc("```\nW: READY   frame 0: 54 57 01 03\n"
                              "           frame 1 (9 octets):\n"
                              "  81 a6 63 72 65 64 69 74  01\n```\n");
    assert_int_equal(t.examples, 1);
    assert_int_equal(t.problems, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protocol_examples),
        cmocka_unit_test(test_broken_examples),
    };
    return cmocka_run_group_tests_name("proto_examples", tests, NULL, NULL);
}

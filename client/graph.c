/*  client/graph.c - task graphs in one SUBMIT: chains and chords (see
 *  taskwheel/graph.h, PROTOCOL.md 18.9).
 *
 *  A node's parents are indexes of earlier nodes; on the wire they become
 *  the seqs of those nodes' items (`as`). The batch is sealed before the
 *  first node and after the last, so the graph is exactly one SUBMIT,
 *  which the broker admits all or nothing.
 */
#include "taskwheel/graph.h"
#include "client/internal.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/util.h"

#include <stdio.h>
#include <string.h>

int
tw_client_graph_submit(tw_client_t *c, const tw_graph_node_t *nodes,
                       size_t n, uint64_t *seqs_out)
{
    if (!c || !nodes || n == 0 || n > TW_GRAPH_MAX_NODES) {
        return TW_EINVAL;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const tw_task_spec_t *s = &nodes[i].spec;
        size_t glen = 0;
        if (!s->handler || tw__spec_names_check(s, &glen) != 0 ||
            (nodes[i].nparents && !nodes[i].parents)) {
            return TW_EINVAL;
        }
        for (size_t k = 0; k < nodes[i].nparents; k++) {
            if (nodes[i].parents[k] >= i) {
                return TW_EINVAL; /* not an earlier node: no cycles */
            }
        }
        bytes += (s->args ? s->args_len : 0) + strlen(s->handler) + glen +
                 9 * nodes[i].nparents + 64;
    }
    if (bytes > TW__CLIENT_MAX_ARGS) {
        return TW_E2BIG;
    }
    if (tw__client_outbox_room(c) < n) {
        return TW_EFULL;
    }
    uint64_t *seqs = tw_malloc(n * sizeof *seqs);
    uint64_t *as = NULL;
    size_t cap = 0;
    int rc = 0;
    tw__client_seal(c);
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t np = nodes[i].nparents;
        if (np > cap) {
            as = tw_realloc(as, np * sizeof *as);
            cap = np;
        }
        for (size_t k = 0; k < np; k++) {
            as[k] = seqs[nodes[i].parents[k]];
        }
        rc = tw__client_submit_as(c, &nodes[i].spec, as, np, &seqs[i]);
        /* Every spec was checked above: only the first can fail here (a
         * stopped session, S80), before anything was queued. */
    }
    tw__client_seal(c);
    if (rc == 0) {
        tw_client_flush(c); /* a full socket keeps it queued: not an error */
        if (seqs_out) {
            memcpy(seqs_out, seqs, n * sizeof *seqs);
        }
    }
    tw_free(as);
    tw_free(seqs);
    return rc;
}

/* What tw_client_graph_ids collects while it polls. */
typedef struct {
    const uint64_t *seqs;
    size_t n;
    uint64_t *ids;
    size_t got;
    int err;
    int points; /* the message kept only points at another node */
    char *msg;
    size_t msglen;
    tw_ack2_cb user_cb; /* the application's callback, still called */
    void *user_arg;
} s_wait_t;

static void
s_on_ack(void *arg, const tw_ack_t *ack)
{
    s_wait_t *w = arg;
    if (w->user_cb) {
        w->user_cb(w->user_arg, ack);
    }
    /* A graph's seqs are consecutive. */
    if (ack->seq < w->seqs[0] || ack->seq - w->seqs[0] >= w->n) {
        return;
    }
    size_t i = (size_t)(ack->seq - w->seqs[0]);
    if (w->seqs[i] != ack->seq) {
        return;
    }
    w->ids[i] = ack->id;
    w->got++;
    /* The refused node says why; the others point at it ("not
     * submitted: ..."). Keep the first that says why. */
    if (ack->err) {
        int points = ack->msg && strncmp(ack->msg, "not submitted:", 14) == 0;
        if (!w->err || (w->points && !points)) {
            w->err = ack->err;
            w->points = points;
            if (w->msg && w->msglen) {
                snprintf(w->msg, w->msglen, "%s", ack->msg ? ack->msg : "");
            }
        }
    }
}

int
tw_client_graph_ids(tw_client_t *c, const uint64_t *seqs, size_t n,
                    uint64_t *ids_out, int timeout_ms, char *err,
                    size_t errlen)
{
    if (!c || !seqs || !ids_out || n == 0) {
        return TW_EINVAL;
    }
    memset(ids_out, 0, n * sizeof *ids_out);
    if (err && errlen) {
        err[0] = '\0';
    }
    s_wait_t w = {seqs, n, ids_out, 0, 0, 0, err, errlen, s_on_ack, NULL};
    void *arg = &w;
    w.user_cb = s_on_ack;
    tw__client_swap_ack2(c, &w.user_cb, &arg);
    w.user_arg = arg;
    uint64_t deadline = tw_now_ms() + (uint64_t)(timeout_ms < 0 ? 0
                                                                : timeout_ms);
    int rc = 0;
    while (w.got < n) {
        uint64_t now = tw_now_ms();
        if (timeout_ms >= 0 && now >= deadline) {
            rc = TW_ETIMEDOUT;
            break;
        }
        int left = timeout_ms < 0 ? -1 : (int)(deadline - now);
        int got = tw_client_poll(c, left);
        if (got < 0) {
            rc = got;
            break;
        }
    }
    tw_ack2_cb cb = w.user_cb;
    void *uarg = w.user_arg;
    tw__client_swap_ack2(c, &cb, &uarg); /* the application's again */
    return rc ? rc : w.err;
}

/* Each spec of `in` (n) with `group` added to its groups, in `out`;
 * the group lists in *lists (free with tw_free). */
static int
s_with_group(const tw_task_spec_t *in, size_t n, const char *group,
             tw_graph_node_t *out, const char ***lists)
{
    *lists = NULL;
    for (size_t i = 0; i < n; i++) {
        out[i].spec = in[i];
    }
    if (!group) {
        return 0;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i].ngroups >= TW_CLIENT_MAX_GROUPS) {
            return TW_EINVAL;
        }
        total += in[i].ngroups + 1;
    }
    const char **all = tw_malloc(total * sizeof *all), **p = all;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < in[i].ngroups; k++) {
            p[k] = in[i].groups[k];
        }
        p[in[i].ngroups] = group;
        out[i].spec.groups = p;
        out[i].spec.ngroups = in[i].ngroups + 1;
        p += in[i].ngroups + 1;
    }
    *lists = all;
    return 0;
}

/* Submit a graph built by a helper and wait for its ids. */
static int
s_run(tw_client_t *c, tw_graph_node_t *nodes, size_t n, uint64_t *ids_out,
      int timeout_ms, char *err, size_t errlen)
{
    uint64_t *seqs = tw_malloc(n * sizeof *seqs);
    int rc = tw_client_graph_submit(c, nodes, n, seqs);
    if (rc == 0 && ids_out) {
        rc = tw_client_graph_ids(c, seqs, n, ids_out, timeout_ms, err,
                                 errlen);
    } else if (rc != 0 && err && errlen) {
        snprintf(err, errlen, "%s", tw_strerror(rc));
    }
    tw_free(seqs);
    return rc;
}

int
tw_client_chain(tw_client_t *c, const tw_task_spec_t *steps, size_t n,
                const char *group, uint64_t *ids_out, int timeout_ms,
                char *err, size_t errlen)
{
    if (!c || !steps || n == 0 || n > TW_GRAPH_MAX_NODES) {
        return TW_EINVAL;
    }
    tw_graph_node_t *nodes = tw_calloc(n, sizeof *nodes);
    size_t *prev = tw_malloc(n * sizeof *prev);
    const char **lists;
    int rc = s_with_group(steps, n, group, nodes, &lists);
    for (size_t i = 1; i < n && rc == 0; i++) {
        prev[i] = i - 1;
        nodes[i].parents = &prev[i];
        nodes[i].nparents = 1;
        nodes[i].spec.with_results = 1;
    }
    if (rc == 0) {
        rc = s_run(c, nodes, n, ids_out, timeout_ms, err, errlen);
    }
    tw_free(lists);
    tw_free(prev);
    tw_free(nodes);
    return rc;
}

int
tw_client_chord(tw_client_t *c, const tw_task_spec_t *header, size_t n,
                const tw_task_spec_t *callback, const char *group,
                uint64_t *ids_out, int timeout_ms, char *err, size_t errlen)
{
    if (!c || !header || !callback || n == 0 ||
        n + 1 > TW_GRAPH_MAX_NODES) {
        return TW_EINVAL;
    }
    tw_task_spec_t *specs = tw_malloc((n + 1) * sizeof *specs);
    memcpy(specs, header, n * sizeof *specs);
    specs[n] = *callback;
    tw_graph_node_t *nodes = tw_calloc(n + 1, sizeof *nodes);
    size_t *all = tw_malloc(n * sizeof *all);
    const char **lists;
    int rc = s_with_group(specs, n + 1, group, nodes, &lists);
    for (size_t i = 0; i < n; i++) {
        all[i] = i;
    }
    nodes[n].parents = all;
    nodes[n].nparents = n;
    nodes[n].spec.with_results = 1;
    if (rc == 0) {
        rc = s_run(c, nodes, n + 1, ids_out, timeout_ms, err, errlen);
    }
    tw_free(lists);
    tw_free(all);
    tw_free(nodes);
    tw_free(specs);
    return rc;
}

/*  broker/state/graph.c - parents named within one SUBMIT (see graph.h).
 */
#include "broker/state/graph.h"
#include "common/error.h"

#include <stdio.h>

void
tw_graph_init(tw_graph_t *g)
{
    tw_idmap_init(&g->byseq);
    g->n = 0;
}

void
tw_graph_free(tw_graph_t *g)
{
    tw_idmap_free(&g->byseq);
    g->n = 0;
}

int64_t
tw_graph_add(tw_graph_t *g, uint64_t seq, char *why, size_t wlen)
{
    if (seq == 0) {
        snprintf(why, wlen, "seq 0: an item of a graph needs a seq of 1 "
                 "or more");
        return TW_EINVAL;
    }
    if (tw_idmap_get(&g->byseq, seq)) {
        snprintf(why, wlen, "seq %llu appears twice in one SUBMIT, so `as` "
                 "could not tell the items apart",
                 (unsigned long long)seq);
        return TW_EINVAL;
    }
    tw_idmap_put(&g->byseq, seq, (void *)(uintptr_t)(g->n + 1));
    return (int64_t)g->n++;
}

int64_t
tw_graph_find(const tw_graph_t *g, uint64_t seq)
{
    uintptr_t v = (uintptr_t)tw_idmap_get(&g->byseq, seq);
    return v ? (int64_t)v - 1 : -1;
}

int
tw_graph_parents(const tw_graph_t *g, const uint64_t *as, size_t n,
                 tw_graph_known_fn known, void *arg, uint64_t *out,
                 char *why, size_t wlen)
{
    for (size_t i = 0; i < n; i++) {
        int64_t k = tw_graph_find(g, as[i]);
        uint64_t id = k < 0 && known ? known(arg, as[i]) : 0;
        if (k < 0 && !id) {
            snprintf(why, wlen, "as names seq %llu, which is not an earlier "
                     "item of this SUBMIT", (unsigned long long)as[i]);
            return TW_ENOENT;
        }
        out[i] = k >= 0 ? (uint64_t)k : TW_GRAPH_ID | id;
    }
    return 0;
}

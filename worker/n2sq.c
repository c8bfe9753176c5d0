/*  worker/n2sq.c - n2s messages waiting for a station's program (see
 *  n2sq.h). A singly linked FIFO, one allocation per message; the same
 *  list holds messages a program has been given and not yet taken.
 */
#include "worker/n2sq.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"

#include <string.h>

tw_n2sq_t *
tw_n2sq_of(tw_station_t *st)
{
    tw_n2sq_t *q = tw_station_data(st);
    if (!q) {
        q = tw_calloc(1, sizeof *q);
        tw_station_set_data(st, q);
    }
    return q;
}

int
tw_n2sq_push(tw_n2sq_t *q, uint64_t seq, const void *p, size_t n,
             const char *suffix, size_t slen)
{
    if (q->n >= TW_N2SQ_MAX || q->bytes + n + slen > TW_N2SQ_MAX_BYTES) {
        q->dropped++;
        return TW_EFULL;
    }
    tw_n2sq_msg_t *m = tw_malloc(sizeof *m + n + slen);
    m->next = NULL;
    m->seq = seq;
    m->len = n + slen;
    memcpy(m->data, p, n);
    if (slen) {
        memcpy(m->data + n, suffix, slen);
    }
    tw_n2sq_put(q, m);
    return 0;
}

tw_n2sq_msg_t *
tw_n2sq_pop(tw_n2sq_t *q)
{
    tw_n2sq_msg_t *m = q->head;
    if (m) {
        q->head = m->next;
        if (!q->head) {
            q->tail = NULL;
        }
        q->n--;
        q->bytes -= m->len;
    }
    return m;
}

void
tw_n2sq_put(tw_n2sq_t *q, tw_n2sq_msg_t *m)
{
    m->next = NULL;
    if (q->tail) {
        q->tail->next = m;
    } else {
        q->head = m;
    }
    q->tail = m;
    q->n++;
    q->bytes += m->len;
}

void
tw_n2sq_requeue(tw_n2sq_t *q, tw_n2sq_t *from, uint64_t after)
{
    while (from->head && from->head->seq <= after) {
        tw_free(tw_n2sq_pop(from));
    }
    if (!from->head) {
        return;
    }
    from->tail->next = q->head;
    if (!q->head) {
        q->tail = from->tail;
    }
    q->head = from->head;
    q->n += from->n;
    q->bytes += from->bytes;
    from->head = from->tail = NULL;
    from->n = from->bytes = 0;
}

void
tw_n2sq_clear(tw_n2sq_t *q)
{
    tw_n2sq_msg_t *m;
    while ((m = tw_n2sq_pop(q)) != NULL) {
        tw_free(m);
    }
}

void
tw_n2sq_end(tw_station_t *st, const char *logid)
{
    tw_n2sq_t *q = tw_station_data(st);
    if (!q) {
        return;
    }
    if (q->dropped) {
        tw_info(logid, "%s: %llu n2s message(s) dropped", tw_station_id(st),
                (unsigned long long)q->dropped);
    }
    tw_n2sq_clear(q);
    tw_free(q);
    tw_station_set_data(st, NULL);
}

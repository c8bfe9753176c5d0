/*  worker/leases.c - running tasks and their dispatch epochs (see
 *  leases.h). */
#include "worker/leases.h"

#define S_EP_MASK ((1ULL << 48) - 1)
#define S_PRESENT (1ULL << 47) /* keeps the value non-NULL when ep is 0 */

void
tw_leases_init(tw_leases_t *l)
{
    tw_idmap_init(&l->byid);
}

void
tw_leases_free(tw_leases_t *l)
{
    tw_idmap_free(&l->byid);
}

void
tw_leases_put(tw_leases_t *l, uint64_t id, uint64_t ep, uint64_t at)
{
    if (!id) {
        return;
    }
    uint64_t v = (ep & (S_EP_MASK >> 1)) | S_PRESENT |
                 (at > 0xffff ? 0xffffULL : at) << 48;
    tw_idmap_put(&l->byid, id, (void *)(uintptr_t)v);
}

uint64_t
tw_leases_take(tw_leases_t *l, uint64_t id)
{
    uint64_t v = id ? (uint64_t)(uintptr_t)tw_idmap_del(&l->byid, id) : 0;
    return v & (S_EP_MASK >> 1);
}

size_t
tw_leases_count(const tw_leases_t *l)
{
    return l->byid.len;
}

static void
s_item(uint64_t id, void *val, void *arg)
{
    tw_enc_t *e = arg;
    uint64_t v = (uint64_t)(uintptr_t)val;
    uint64_t ep = v & (S_EP_MASK >> 1);
    tw_enc_map(e, ep ? 3 : 2);
    tw_enc_ikey(e, TW_I_ID);
    tw_enc_uint(e, id);
    tw_enc_ikey(e, TW_I_AT);
    tw_enc_uint(e, v >> 48);
    if (ep) {
        tw_enc_ikey(e, TW_I_EP);
        tw_enc_uint(e, ep);
    }
}

void
tw_leases_encode(const tw_leases_t *l, tw_enc_t *e)
{
    tw_enc_key(e, TW_F_ITEMS);
    tw_enc_array(e, l->byid.len);
    tw_idmap_each(&l->byid, s_item, e);
}

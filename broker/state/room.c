/*  broker/state/room.c - admission against the store's measured use and what is
 *  on its way (see room.h).
 */
#include "broker/state/room.h"
#include "common/error.h"

#define S_PAGE 4096u
#define S_INLINE 1900u     /* LMDB keeps values up to ~2 KiB in the page */
#define S_NODE 24u         /* node header, key, checksum, index */
#define S_MIN_RESERVE (1u << 20)

uint64_t
tw_room_est(size_t vlen)
{
    if (vlen <= S_INLINE) {
        return 2 * ((uint64_t)vlen + S_NODE);
    }
    /* Overflow pages, whole, plus the node that points at them. */
    return ((uint64_t)vlen + 16 + S_PAGE - 1) / S_PAGE * S_PAGE + 2 * S_NODE;
}

uint64_t
tw_room_cap(const tw_room_t *r)
{
    uint64_t cap = r->data_bytes;
    if (r->use.have_disk && r->use.file_bytes + r->use.disk_free < cap) {
        cap = r->use.file_bytes + r->use.disk_free;
    }
    return cap;
}

uint64_t
tw_room_reserve(const tw_room_t *r)
{
    uint64_t res = tw_room_cap(r) / 8;
    return res > S_MIN_RESERVE ? res : S_MIN_RESERVE;
}

int
tw_room_admit(tw_room_t *r, uint64_t need)
{
    uint64_t cap = tw_room_cap(r), res = tw_room_reserve(r);
    uint64_t after = r->use.live_bytes + r->flight + r->turn + need;
    if (cap <= res || after > cap - res) {
        return TW_EFULL;
    }
    r->turn += need;
    return 0;
}

void
tw_room_seal(tw_room_t *r, uint64_t growth)
{
    r->flight += growth;
    r->turn = 0;
}

void
tw_room_done(tw_room_t *r, uint64_t growth, const tw_store_use_t *use)
{
    r->flight = r->flight > growth ? r->flight - growth : 0;
    if (use) {
        r->use = *use;
    }
}

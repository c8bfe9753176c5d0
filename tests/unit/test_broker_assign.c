/*  tests/unit/test_broker_assign.c - the assignator's choice.
 *
 *  tw_assign_choose() is a pure function over a snapshot of the workers, so
 *  every case here is a small array of tw_assign_worker_t built by hand and
 *  a station need. The suite checks, in order: eligibility (S37's ALL for a
 *  station without code or tags, S38's GROUP filter on the worker tag
 *  "code", and station tags that must all be present with equal values);
 *  the three placements (any, prefer falling back to non-matching workers,
 *  pinned answering WAIT_HOST only when no matching worker is connected and
 *  NO_ROOM when matching ones are full); draining workers; the least-loaded
 *  choice with its two tie-breaks (more credit, then joining order, S36);
 *  and capacity, which needs both a free slot and task credit.
 *
 *  Two loop tests drive the function the way broker/core/place.c's
 *  placement pass does (after each placement the chosen worker's snapshot
 *  gets one more station and one less credit). The first mixes placements,
 *  stations ending and task credit coming and going under a seeded
 *  generator, and checks after every step that no worker holds more
 *  stations than slots (S36, S42: one slot per station) and that every
 *  answer agrees with a brute-force reading of the policy. The second
 *  places 100,000 stations on 20 workers and checks that all are placed and
 *  the spread never exceeds one; how fast that is belongs in bench/.
 *
 *  S41 is not copied: a station that cannot be placed gets a reason, never
 *  silence, so tw_assign_reason() is checked too.
 *
 *  Offering the station's handler is part of eligibility, whatever the
 *  placement, as it is for task dispatch (S26, PROTOCOL.md 11.9): a worker
 *  that matches code and tags but lacks the handler is no candidate, and
 *  when only such workers are connected the answer is NO_HANDLER, which
 *  the broker sets aside like NO_MATCH. A restarting station's last
 *  failing worker (`avoid`) is chosen only when no other candidate has
 *  room. The property test draws handlers and `avoid` too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "broker/state/assign.h"
#include "tests/unit/support/rng.h"

/* ---- helpers ---------------------------------------------------------- */

/* Worker tag lists: key, value, key, value... */
static char *s_code_a[] = {"code", "A"};
static char *s_code_b[] = {"code", "B"};
static char *s_code_a_eu[] = {"zone", "eu", "code", "A"};
static char *s_eu_gpu[] = {"zone", "eu", "gpu", "1", "rack", "7"};
static char *s_us_gpu[] = {"zone", "us", "gpu", "1"};
static char *s_eu[] = {"zone", "eu"};

/* Station tag lists. */
static char *s_need_eu[] = {"zone", "eu"};
static char *s_need_eu_gpu[] = {"gpu", "1", "zone", "eu"};

static tw_assign_worker_t
s_w(uint32_t slots, uint32_t stations, uint64_t credit, char **tags,
    size_t ntags)
{
    return (tw_assign_worker_t){.slots = slots,
                                .stations = stations,
                                .credit = credit,
                                .tags = tags,
                                .ntags = ntags};
}

#define S_W(slots, stations, credit, tags)                                   \
    s_w(slots, stations, credit, tags, sizeof(tags) / sizeof *(tags))
#define S_WNONE(slots, stations, credit) s_w(slots, stations, credit, NULL, 0)

static tw_assign_need_t
s_need(tw_placement_t p, const char *code, char **tags, size_t ntags)
{
    return (tw_assign_need_t){
        .placement = p, .code = code, .tags = tags, .ntags = ntags};
}

/* Choose and return the result; *chosen is poisoned first so a result
 * other than OK must leave it alone (checked by callers that care). */
static tw_assign_result_t
s_choose(const tw_assign_worker_t *ws, size_t n, const tw_assign_need_t *need,
         size_t *chosen)
{
    *chosen = (size_t)-1;
    return tw_assign_choose(ws, n, need, chosen);
}

/* ---- eligibility ------------------------------------------------------ */

/* tw_assign_matches: code against the worker tag "code", station tags all
 * present with equal values; nothing asked matches everyone (S37). */
static void
test_matches(void **state)
{
    (void)state;
    tw_assign_worker_t bare = S_WNONE(1, 0, 1);
    tw_assign_worker_t a = S_W(1, 0, 1, s_code_a);
    tw_assign_worker_t b = S_W(1, 0, 1, s_code_b);
    tw_assign_worker_t a_eu = S_W(1, 0, 1, s_code_a_eu);
    tw_assign_worker_t eu_gpu = S_W(1, 0, 1, s_eu_gpu);
    tw_assign_worker_t us_gpu = S_W(1, 0, 1, s_us_gpu);

    tw_assign_need_t all = s_need(TW_PLACE_ANY, NULL, NULL, 0);
    assert_true(tw_assign_matches(&bare, &all));
    assert_true(tw_assign_matches(&a, &all));
    assert_true(tw_assign_matches(&eu_gpu, &all));

    /* S38: the station's code must equal the worker's "code" tag. */
    tw_assign_need_t code_a = s_need(TW_PLACE_ANY, "A", NULL, 0);
    assert_false(tw_assign_matches(&bare, &code_a));
    assert_true(tw_assign_matches(&a, &code_a));
    assert_false(tw_assign_matches(&b, &code_a));
    assert_true(tw_assign_matches(&a_eu, &code_a)); /* other tags: fine */
    assert_false(tw_assign_matches(&eu_gpu, &code_a));
    /* The comparison is exact: no prefix, no case folding. */
    tw_assign_need_t code_aa = s_need(TW_PLACE_ANY, "AA", NULL, 0);
    tw_assign_need_t code_lc = s_need(TW_PLACE_ANY, "a", NULL, 0);
    assert_false(tw_assign_matches(&a, &code_aa));
    assert_false(tw_assign_matches(&a, &code_lc));

    /* Tags: every station tag present on the worker with the same value,
     * in any order; extra worker tags do not matter. */
    tw_assign_need_t eu = s_need(TW_PLACE_ANY, NULL, s_need_eu, 2);
    tw_assign_need_t eu_g = s_need(TW_PLACE_ANY, NULL, s_need_eu_gpu, 4);
    assert_true(tw_assign_matches(&eu_gpu, &eu));
    assert_true(tw_assign_matches(&eu_gpu, &eu_g));
    assert_true(tw_assign_matches(&a_eu, &eu));
    assert_false(tw_assign_matches(&a_eu, &eu_g)); /* no gpu tag */
    assert_false(tw_assign_matches(&us_gpu, &eu_g)); /* zone differs */
    assert_false(tw_assign_matches(&bare, &eu));

    /* Code and tags together: both must hold. */
    tw_assign_need_t a_and_eu = s_need(TW_PLACE_ANY, "A", s_need_eu, 2);
    assert_true(tw_assign_matches(&a_eu, &a_and_eu));
    assert_false(tw_assign_matches(&a, &a_and_eu));
    assert_false(tw_assign_matches(&eu_gpu, &a_and_eu));
}

/* S37 ALL: a station with neither code nor tags may go anywhere, whatever
 * the workers' tags, and the placement makes no difference. */
static void
test_all_places_anywhere(void **state)
{
    (void)state;
    tw_assign_worker_t ws[3] = {S_W(2, 1, 1, s_code_b), S_W(2, 0, 2, s_eu),
                                S_WNONE(2, 1, 1)};
    size_t chosen;
    for (int p = TW_PLACE_ANY; p <= TW_PLACE_PINNED; p++) {
        tw_assign_need_t need = s_need((tw_placement_t)p, NULL, NULL, 0);
        assert_int_equal(s_choose(ws, 3, &need, &chosen), TW_ASSIGN_OK);
        assert_int_equal(chosen, 1); /* the least loaded */
    }
    /* Only the tagged worker has room: still eligible under ALL. */
    ws[1].stations = 2;
    ws[2].credit = 0;
    tw_assign_need_t need = s_need(TW_PLACE_ANY, NULL, NULL, 0);
    assert_int_equal(s_choose(ws, 3, &need, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 0);
}

/* S38 GROUP: with a code, "any" considers only the workers carrying that
 * code. Full ones give NO_ROOM; none at all gives NO_MATCH (pending, not
 * waiting-for-host: that is pinned's answer). Workers of another code are
 * never used, however idle. */
static void
test_group_code_filter(void **state)
{
    (void)state;
    tw_assign_worker_t ws[4] = {S_W(4, 0, 4, s_code_b), S_W(4, 3, 1, s_code_a),
                                S_WNONE(4, 0, 4), S_W(4, 2, 2, s_code_a_eu)};
    tw_assign_need_t need = s_need(TW_PLACE_ANY, "A", NULL, 0);
    size_t chosen;
    assert_int_equal(s_choose(ws, 4, &need, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 3); /* fewer stations than worker 1 */

    ws[3].stations = 4; /* no free slot */
    assert_int_equal(s_choose(ws, 4, &need, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 1);

    ws[1].credit = 0; /* both code-A workers full: B and bare stay unused */
    assert_int_equal(s_choose(ws, 4, &need, &chosen), TW_ASSIGN_NO_ROOM);
    assert_int_equal(chosen, (size_t)-1);

    /* No code-C worker is connected. */
    tw_assign_need_t c = s_need(TW_PLACE_ANY, "C", NULL, 0);
    assert_int_equal(s_choose(ws, 4, &c, &chosen), TW_ASSIGN_NO_MATCH);
    assert_int_equal(chosen, (size_t)-1);

    /* No workers at all. */
    assert_int_equal(s_choose(ws, 0, &need, &chosen), TW_ASSIGN_NO_MATCH);
    tw_assign_need_t all = s_need(TW_PLACE_ANY, NULL, NULL, 0);
    assert_int_equal(s_choose(ws, 0, &all, &chosen), TW_ASSIGN_NO_MATCH);
}

/* prefer: matching workers first even when a non-matching one is less
 * loaded; when no matching worker has room (or none is connected), any
 * other worker; NO_ROOM only when nobody has room. */
static void
test_prefer_falls_back(void **state)
{
    (void)state;
    tw_assign_worker_t ws[3] = {S_WNONE(8, 0, 8), S_W(4, 3, 1, s_eu_gpu),
                                S_W(8, 1, 7, s_us_gpu)};
    tw_assign_need_t need = s_need(TW_PLACE_PREFER, NULL, s_need_eu_gpu, 4);
    size_t chosen;
    assert_int_equal(s_choose(ws, 3, &need, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 1); /* matching, although the busiest */

    ws[1].stations = 4; /* the match is full: least loaded of the rest */
    assert_int_equal(s_choose(ws, 3, &need, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 0);

    ws[0].credit = 0;
    assert_int_equal(s_choose(ws, 3, &need, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 2);

    ws[2].stations = 8; /* nobody has room */
    assert_int_equal(s_choose(ws, 3, &need, &chosen), TW_ASSIGN_NO_ROOM);

    /* No matching worker connected at all: prefer still places. */
    tw_assign_worker_t others[2] = {S_W(2, 1, 1, s_code_b), S_WNONE(2, 0, 2)};
    tw_assign_need_t pa = s_need(TW_PLACE_PREFER, "A", NULL, 0);
    assert_int_equal(s_choose(others, 2, &pa, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 1);
    others[1].stations = 2;
    assert_int_equal(s_choose(others, 2, &pa, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 0);
    others[0].stations = 2; /* full everywhere: NO_ROOM, not NO_MATCH */
    assert_int_equal(s_choose(others, 2, &pa, &chosen), TW_ASSIGN_NO_ROOM);
    assert_int_equal(s_choose(others, 0, &pa, &chosen), TW_ASSIGN_NO_MATCH);
}

/* pinned: only matching workers. WAIT_HOST when no matching worker is
 * connected (however much room others have); NO_ROOM when matching ones
 * are connected but full. */
static void
test_pinned(void **state)
{
    (void)state;
    tw_assign_worker_t ws[3] = {S_WNONE(8, 0, 8), S_W(8, 0, 8, s_code_b),
                                S_W(8, 0, 8, s_us_gpu)};
    tw_assign_need_t need = s_need(TW_PLACE_PINNED, "A", NULL, 0);
    size_t chosen;
    assert_int_equal(s_choose(ws, 3, &need, &chosen), TW_ASSIGN_WAIT_HOST);
    assert_int_equal(chosen, (size_t)-1);
    assert_int_equal(s_choose(ws, 0, &need, &chosen), TW_ASSIGN_WAIT_HOST);

    /* The host arrives, full: NO_ROOM (pending), not waiting-for-host. */
    tw_assign_worker_t ws2[4] = {ws[0], ws[1], ws[2], S_W(2, 2, 3, s_code_a)};
    assert_int_equal(s_choose(ws2, 4, &need, &chosen), TW_ASSIGN_NO_ROOM);
    ws2[3].stations = 1;
    ws2[3].credit = 0; /* a slot but no credit: still full */
    assert_int_equal(s_choose(ws2, 4, &need, &chosen), TW_ASSIGN_NO_ROOM);
    ws2[3].credit = 1;
    assert_int_equal(s_choose(ws2, 4, &need, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 3);

    /* Pinned by tags works the same way. */
    tw_assign_need_t t = s_need(TW_PLACE_PINNED, NULL, s_need_eu_gpu, 4);
    assert_int_equal(s_choose(ws, 3, &t, &chosen), TW_ASSIGN_WAIT_HOST);
    tw_assign_worker_t ws3[2] = {ws[2], S_W(1, 1, 1, s_eu_gpu)};
    assert_int_equal(s_choose(ws3, 2, &t, &chosen), TW_ASSIGN_NO_ROOM);
    ws3[1].slots = 2;
    assert_int_equal(s_choose(ws3, 2, &t, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 1);
}

/* A draining worker takes nothing new, even if it is the least loaded or
 * the only match. It does not count as a connected eligible worker
 * either: with only draining matches, pinned waits for a host and any
 * reports no match. */
static void
test_draining_excluded(void **state)
{
    (void)state;
    tw_assign_worker_t ws[3] = {S_W(8, 0, 8, s_code_a), S_W(8, 5, 3, s_code_a),
                                S_WNONE(8, 0, 8)};
    ws[0].draining = 1;
    tw_assign_need_t all = s_need(TW_PLACE_ANY, NULL, NULL, 0);
    tw_assign_need_t a = s_need(TW_PLACE_ANY, "A", NULL, 0);
    size_t chosen;
    assert_int_equal(s_choose(ws, 3, &all, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 2);
    assert_int_equal(s_choose(ws, 3, &a, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 1);

    ws[1].draining = 1;
    assert_int_equal(s_choose(ws, 3, &a, &chosen), TW_ASSIGN_NO_MATCH);
    tw_assign_need_t pin = s_need(TW_PLACE_PINNED, "A", NULL, 0);
    assert_int_equal(s_choose(ws, 3, &pin, &chosen), TW_ASSIGN_WAIT_HOST);
    tw_assign_need_t pref = s_need(TW_PLACE_PREFER, "A", NULL, 0);
    assert_int_equal(s_choose(ws, 3, &pref, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 2);

    ws[2].draining = 1;
    assert_int_equal(s_choose(ws, 3, &all, &chosen), TW_ASSIGN_NO_MATCH);
    assert_int_equal(s_choose(ws, 3, &pref, &chosen), TW_ASSIGN_NO_MATCH);
}

/* Least loaded first: fewest stations; then most credit; then joining
 * order (the lowest index), which is S36's first-fit when all are equal. */
static void
test_least_loaded_and_ties(void **state)
{
    (void)state;
    tw_assign_need_t all = s_need(TW_PLACE_ANY, NULL, NULL, 0);
    size_t chosen;

    tw_assign_worker_t ws[4] = {S_WNONE(8, 3, 5), S_WNONE(8, 2, 1),
                                S_WNONE(8, 2, 4), S_WNONE(8, 4, 4)};
    assert_int_equal(s_choose(ws, 4, &all, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 2); /* 2 stations, more credit than #1 */

    ws[1].credit = 4; /* tie on both: the earlier joiner */
    assert_int_equal(s_choose(ws, 4, &all, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 1);

    /* Fewer stations beats more credit. */
    ws[3].stations = 1;
    ws[3].credit = 1;
    assert_int_equal(s_choose(ws, 4, &all, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 3);

    /* All equal: the first, whatever the slot counts. */
    tw_assign_worker_t eq[3] = {S_WNONE(2, 1, 1), S_WNONE(9, 1, 1),
                                S_WNONE(5, 1, 1)};
    assert_int_equal(s_choose(eq, 3, &all, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 0);

    /* A full worker is skipped even when it would otherwise win. */
    eq[0].stations = 0;
    eq[0].slots = 0;
    assert_int_equal(s_choose(eq, 3, &all, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 1);
}

/* Room needs both a free slot (stations < slots) and task credit; a
 * worker with no slots never has room (S36). */
static void
test_capacity_needs_slot_and_credit(void **state)
{
    (void)state;
    tw_assign_need_t all = s_need(TW_PLACE_ANY, NULL, NULL, 0);
    size_t chosen;
    tw_assign_worker_t w = S_WNONE(3, 3, 10); /* credit but no slot */
    assert_int_equal(s_choose(&w, 1, &all, &chosen), TW_ASSIGN_NO_ROOM);
    w = S_WNONE(3, 2, 0); /* a slot but no credit (tasks hold it) */
    assert_int_equal(s_choose(&w, 1, &all, &chosen), TW_ASSIGN_NO_ROOM);
    w = S_WNONE(0, 0, 5);
    assert_int_equal(s_choose(&w, 1, &all, &chosen), TW_ASSIGN_NO_ROOM);
    w = S_WNONE(3, 5, 5); /* already over (should never happen) */
    assert_int_equal(s_choose(&w, 1, &all, &chosen), TW_ASSIGN_NO_ROOM);
    w = S_WNONE(3, 2, 1);
    assert_int_equal(s_choose(&w, 1, &all, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 0);
}

/* Every result has a distinct, non-empty reason (S39-S41: the pending
 * answer says why). */
static void
test_reasons(void **state)
{
    (void)state;
    const tw_assign_result_t rs[5] = {TW_ASSIGN_OK, TW_ASSIGN_NO_ROOM,
                                      TW_ASSIGN_NO_MATCH, TW_ASSIGN_WAIT_HOST,
                                      TW_ASSIGN_NO_HANDLER};
    for (int i = 0; i < 5; i++) {
        const char *a = tw_assign_reason(rs[i]);
        assert_non_null(a);
        assert_true(strlen(a) > 0);
        assert_string_not_equal(a, "?");
        for (int k = 0; k < i; k++) {
            assert_string_not_equal(a, tw_assign_reason(rs[k]));
        }
    }
    assert_string_equal(tw_assign_reason((tw_assign_result_t)99), "?");
    /* The pending reason says what is missing. */
    assert_non_null(strstr(tw_assign_reason(TW_ASSIGN_NO_HANDLER),
                           "handler"));
}

/* ---- handlers and restarts -------------------------------------------- */

/* Handler lists: indices into the broker's handler table. */
static const uint32_t s_h0[] = {0};
static const uint32_t s_h1[] = {1};
static const uint32_t s_h01[] = {0, 1};

static tw_assign_worker_t
s_wh(uint32_t slots, uint32_t stations, char **tags, size_t ntags,
     const uint32_t *h, size_t nh)
{
    tw_assign_worker_t w = s_w(slots, stations, slots, tags, ntags);
    w.handlers = h;
    w.nhandlers = nh;
    return w;
}

static tw_assign_need_t
s_need_h(tw_placement_t p, const char *code, uint32_t handler)
{
    tw_assign_need_t n = s_need(p, code, NULL, 0);
    n.has_handler = 1;
    n.handler = handler;
    return n;
}

/* A station goes only where its handler is: the least loaded worker that
 * lacks it is passed over, as in task dispatch; when connected workers
 * match but none offers it the answer is NO_HANDLER (with no worker at
 * all, NO_MATCH as before). Without has_handler every worker offers. */
static void
test_handler_eligibility(void **state)
{
    (void)state;
    tw_assign_worker_t ws[3] = {s_wh(4, 0, NULL, 0, s_h1, 1),
                                s_wh(4, 3, NULL, 0, s_h01, 2),
                                s_wh(4, 1, NULL, 0, NULL, 0)};
    size_t chosen;
    tw_assign_need_t h0 = s_need_h(TW_PLACE_ANY, NULL, 0);
    assert_true(tw_assign_offers(&ws[1], &h0));
    assert_false(tw_assign_offers(&ws[0], &h0));
    assert_false(tw_assign_offers(&ws[2], &h0));
    assert_int_equal(s_choose(ws, 3, &h0, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 1); /* the busiest, but the only one with h0 */
    tw_assign_need_t h1 = s_need_h(TW_PLACE_ANY, NULL, 1);
    assert_int_equal(s_choose(ws, 3, &h1, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 0);
    tw_assign_need_t none = s_need(TW_PLACE_ANY, NULL, NULL, 0);
    assert_true(tw_assign_offers(&ws[2], &none));
    assert_int_equal(s_choose(ws, 3, &none, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 0);

    /* Nobody offers handler 2: NO_HANDLER, not NO_ROOM or NO_MATCH. */
    tw_assign_need_t h2 = s_need_h(TW_PLACE_ANY, NULL, 2);
    assert_int_equal(s_choose(ws, 3, &h2, &chosen), TW_ASSIGN_NO_HANDLER);
    assert_int_equal(chosen, (size_t)-1);
    assert_int_equal(s_choose(ws, 0, &h2, &chosen), TW_ASSIGN_NO_MATCH);
    /* The one offering h0 is full: NO_ROOM (it will have room later). */
    ws[1].stations = 4;
    assert_int_equal(s_choose(ws, 3, &h0, &chosen), TW_ASSIGN_NO_ROOM);
    /* ... or draining: then no candidate is connected at all. */
    ws[1].stations = 0;
    ws[1].draining = 1;
    assert_int_equal(s_choose(ws, 3, &h0, &chosen), TW_ASSIGN_NO_HANDLER);
    ws[0].draining = ws[2].draining = 1;
    assert_int_equal(s_choose(ws, 3, &h0, &chosen), TW_ASSIGN_NO_MATCH);
}

/* The handler rule holds with code filters and every placement: pinned
 * to a host that is connected but lacks the handler is NO_HANDLER (not
 * waiting-for-host), prefer falls back only to a worker that offers it. */
static void
test_handler_with_placements(void **state)
{
    (void)state;
    tw_assign_worker_t ws[3] = {s_wh(4, 0, s_code_a, 2, s_h1, 1),
                                s_wh(4, 2, s_code_b, 2, s_h0, 1),
                                s_wh(4, 0, NULL, 0, s_h1, 1)};
    size_t chosen;
    tw_assign_need_t any = s_need_h(TW_PLACE_ANY, "A", 0);
    assert_int_equal(s_choose(ws, 3, &any, &chosen), TW_ASSIGN_NO_HANDLER);
    tw_assign_need_t pin = s_need_h(TW_PLACE_PINNED, "A", 0);
    assert_int_equal(s_choose(ws, 3, &pin, &chosen), TW_ASSIGN_NO_HANDLER);
    tw_assign_need_t pin_c = s_need_h(TW_PLACE_PINNED, "C", 0);
    assert_int_equal(s_choose(ws, 3, &pin_c, &chosen), TW_ASSIGN_WAIT_HOST);
    tw_assign_need_t pref = s_need_h(TW_PLACE_PREFER, "A", 0);
    assert_int_equal(s_choose(ws, 3, &pref, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 1); /* not #2, the less loaded, without h0 */
    ws[1].stations = 4;
    assert_int_equal(s_choose(ws, 3, &pref, &chosen), TW_ASSIGN_NO_ROOM);
    tw_assign_need_t pref2 = s_need_h(TW_PLACE_PREFER, "A", 2);
    assert_int_equal(s_choose(ws, 3, &pref2, &chosen), TW_ASSIGN_NO_HANDLER);
    /* Matching and offering: the code filter still applies. */
    tw_assign_need_t a1 = s_need_h(TW_PLACE_ANY, "A", 1);
    assert_int_equal(s_choose(ws, 3, &a1, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 0);
}

/* A restart avoids the worker the station failed on when another
 * candidate has room, even a busier one; alone, that worker still gets
 * it. avoid 0 changes nothing. */
static void
test_restart_avoids_last_worker(void **state)
{
    (void)state;
    tw_assign_worker_t ws[3] = {S_WNONE(4, 0, 4), S_WNONE(4, 2, 2),
                                S_WNONE(4, 1, 3)};
    for (size_t i = 0; i < 3; i++) {
        ws[i].id = 10 + i;
    }
    size_t chosen;
    tw_assign_need_t need = s_need(TW_PLACE_ANY, NULL, NULL, 0);
    assert_int_equal(s_choose(ws, 3, &need, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 0);
    need.avoid = 10;
    assert_int_equal(s_choose(ws, 3, &need, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 2); /* the next least loaded */
    ws[2].credit = 0;
    assert_int_equal(s_choose(ws, 3, &need, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 1);
    ws[1].stations = 4;
    assert_int_equal(s_choose(ws, 3, &need, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 0); /* nobody else has room */
    need.avoid = 99; /* not connected: no effect */
    ws[1].stations = ws[0].stations = 0;
    ws[2].credit = 3;
    assert_int_equal(s_choose(ws, 3, &need, &chosen), TW_ASSIGN_OK);
    assert_int_equal(chosen, 0);
}

/* ---- loops ------------------------------------------------------------ */

/* What broker/core/place.c's s_try_place does to its snapshot after
 * an assignment. */
static void
s_took(tw_assign_worker_t *w)
{
    w->stations++;
    if (w->credit) {
        w->credit--;
    }
}

static int
s_room(const tw_assign_worker_t *w)
{
    return !w->draining && w->stations < w->slots && w->credit > 0;
}

/* 1 if `w` offers `need`'s handler, read literally. */
static int
s_ref_offers(const tw_assign_worker_t *w, const tw_assign_need_t *need)
{
    int found = !need->has_handler;
    for (size_t i = 0; i < w->nhandlers; i++) {
        found |= w->handlers[i] == need->handler;
    }
    return found;
}

/* The policy read literally, for the property test: which result and
 * which candidates (bitmask) would be right. */
static tw_assign_result_t
s_reference(const tw_assign_worker_t *ws, size_t n,
            const tw_assign_need_t *need, uint64_t *ok_set)
{
    int filtered = need->code || need->ntags;
    int prefer = filtered && need->placement == TW_PLACE_PREFER;
    size_t best = n;
    int cand_live = 0, set_live = 0;
    /* Pass 0: matching workers; pass 1 (prefer only): the others. */
    for (int pass = 0; pass < 2 && best == n; pass++) {
        if (pass == 1 && !prefer) {
            break;
        }
        for (size_t i = 0; i < n; i++) {
            int m = tw_assign_matches(&ws[i], need);
            if (m != (pass == 0)) {
                continue;
            }
            set_live |= !ws[i].draining;
            if (!s_ref_offers(&ws[i], need)) {
                continue;
            }
            cand_live |= !ws[i].draining;
            if (!s_room(&ws[i])) {
                continue;
            }
            /* (avoided, stations, -credit), lowest first; ties keep the
             * earlier joiner. */
            int av_i = need->avoid && ws[i].id == need->avoid;
            int av_best = best < n && need->avoid &&
                          ws[best].id == need->avoid;
            if (best == n || av_i < av_best ||
                (av_i == av_best && (ws[i].stations < ws[best].stations ||
                              (ws[i].stations == ws[best].stations &&
                               ws[i].credit > ws[best].credit)))) {
                best = i;
            }
        }
    }
    *ok_set = 0;
    if (best < n) {
        *ok_set = 1ULL << best;
        return TW_ASSIGN_OK;
    }
    if (cand_live) {
        return TW_ASSIGN_NO_ROOM;
    }
    if (set_live) {
        return TW_ASSIGN_NO_HANDLER;
    }
    return need->placement == TW_PLACE_PINNED ? TW_ASSIGN_WAIT_HOST
                                              : TW_ASSIGN_NO_MATCH;
}

/* S36, S42: a seeded mix of placements (random code/tags/placement),
 * stations ending (the worker returns the slot's credit), task credit being
 * spent and returned, and workers starting or stopping to drain. After
 * every step no worker holds more stations than slots, and every answer
 * agrees with the reference reading. */
static void
test_never_oversubscribed(void **state)
{
    (void)state;
    enum { NW = 12, STEPS = 200000 };
    static char *tagsets[4][4] = {{"code", "A", "zone", "eu"},
                                  {"code", "B", "zone", "eu"},
                                  {"code", "A", "zone", "us"},
                                  {"zone", "us", "gpu", "1"}};
    static const char *codes[3] = {NULL, "A", "B"};
    static char *needtags[3][2] = {{"zone", "eu"}, {"zone", "us"},
                                   {"gpu", "1"}};
    static const uint32_t hsets[4][2] = {{0, 1}, {1, 2}, {2, 0}, {0, 1}};
    tw_assign_worker_t ws[NW];
    tw_test_rng = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < NW; i++) {
        uint32_t slots = (uint32_t)(tw_test_rand() % 6); /* 0..5, some zero */
        ws[i] = s_w(slots, 0, slots, (i % 5 == 4) ? NULL : tagsets[i % 4],
                    (i % 5 == 4) ? 0 : 4);
        ws[i].id = i + 1;
        ws[i].handlers = hsets[i % 4];
        ws[i].nhandlers = i % 3; /* 0, 1 or 2 handlers */
    }
    size_t placed = 0, refused = 0;
    for (int step = 0; step < STEPS; step++) {
        unsigned op = (unsigned)(tw_test_rand() % 10);
        size_t k = (size_t)(tw_test_rand() % NW);
        tw_assign_worker_t *w = &ws[k];
        if (op < 5) {
            int nt = (int)(tw_test_rand() % 4) - 1; /* -1: no tags */
            tw_assign_need_t need = s_need(
                (tw_placement_t)(tw_test_rand() % 3), codes[tw_test_rand() % 3],
                nt < 0 ? NULL : needtags[nt], nt < 0 ? 0 : 2);
            need.has_handler = (int)(tw_test_rand() % 2);
            need.handler = (uint32_t)(tw_test_rand() % 4); /* 3: nobody's */
            need.avoid = tw_test_rand() % 3 ? 0 : 1 + tw_test_rand() % NW;
            uint64_t ok_set;
            tw_assign_result_t want = s_reference(ws, NW, &need, &ok_set);
            size_t chosen;
            tw_assign_result_t got = s_choose(ws, NW, &need, &chosen);
            assert_int_equal(got, want);
            if (got == TW_ASSIGN_OK) {
                assert_true(chosen < NW);
                assert_true(ok_set & (1ULL << chosen));
                assert_true(s_room(&ws[chosen]));
                s_took(&ws[chosen]);
                placed++;
            } else {
                refused++;
            }
        } else if (op < 7) {
            if (w->stations) { /* a station ended: slot and credit back */
                w->stations--;
                w->credit++;
            }
        } else if (op < 8) {
            if (w->credit) { /* a task took the credit */
                w->credit--;
            }
        } else if (op < 9) {
            if (w->credit + w->stations < w->slots) { /* a task ended */
                w->credit++;
            }
        } else {
            w->draining = (tw_test_rand() % 8) == 0;
        }
        for (size_t i = 0; i < NW; i++) {
            assert_true(ws[i].stations <= ws[i].slots);
        }
    }
    /* Both outcomes were exercised a lot. */
    assert_true(placed > 10000);
    assert_true(refused > 10000);
}

/* Placement pass in the style of tw__place_pass: 100,000 stations, 20
 * workers of 5,000 slots. Every station is placed, the spread between the
 * most and least loaded worker never exceeds one, and at the end every
 * worker holds exactly 5,000 and has no credit left. A 100,001st station
 * is refused with NO_ROOM. */
static void
test_place_100k(void **state)
{
    (void)state;
    enum { NW = 20, PER = 5000, N = NW * PER };
    tw_assign_worker_t ws[NW];
    for (size_t i = 0; i < NW; i++) {
        ws[i] = S_WNONE(PER, 0, PER);
    }
    tw_assign_need_t all = s_need(TW_PLACE_ANY, NULL, NULL, 0);
    for (size_t s = 0; s < N; s++) {
        size_t chosen;
        assert_int_equal(tw_assign_choose(ws, NW, &all, &chosen),
                         TW_ASSIGN_OK);
        /* Least loaded with ties by joining order: a round robin. */
        assert_int_equal(chosen, s % NW);
        s_took(&ws[chosen]);
    }
    for (size_t i = 0; i < NW; i++) {
        assert_int_equal(ws[i].stations, PER);
        assert_int_equal(ws[i].credit, 0);
    }
    size_t chosen;
    assert_int_equal(s_choose(ws, NW, &all, &chosen), TW_ASSIGN_NO_ROOM);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches),
        cmocka_unit_test(test_all_places_anywhere),
        cmocka_unit_test(test_group_code_filter),
        cmocka_unit_test(test_prefer_falls_back),
        cmocka_unit_test(test_pinned),
        cmocka_unit_test(test_draining_excluded),
        cmocka_unit_test(test_least_loaded_and_ties),
        cmocka_unit_test(test_capacity_needs_slot_and_credit),
        cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_handler_eligibility),
        cmocka_unit_test(test_handler_with_placements),
        cmocka_unit_test(test_restart_avoids_last_worker),
        cmocka_unit_test(test_never_oversubscribed),
        cmocka_unit_test(test_place_100k),
    };
    return cmocka_run_group_tests_name("broker_assign", tests, NULL, NULL);
}

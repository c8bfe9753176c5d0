/*  tests/fault/53-pair-cut-peers.c - over network namespaces, a broker
 *  pair cut from each other only: no second active appears, the active
 *  serves alone meanwhile, and after the heal the passive follows again;
 *  nothing is lost (docs/HA.md section 6, rule 1 of section 2).
 *
 *  Halfway through the stream (tests/fault/pair.h, --replicate sync) the
 *  link between the broker and backup hosts is cut (blackhole routes:
 *  silence, no closed connection); the client and the workers still reach
 *  the primary. The backup must see its peer lost, the primary must go on
 *  alone (ha_sync 0: its ACKs no longer wait for a passive it cannot
 *  hear), and the stream goes on. The backup is watched through its
 *  status socket and its status all along: it never publishes ha.active
 *  and never reports itself active. After the heal the primary follows
 *  the backup again (ha_sync 1), still under its first epoch, and every
 *  submission ends ok once.
 */
#include "tests/fault/pair.h"
#include "tests/harness/multihost.h"


static size_t s_cut_done; /* tasks ended ok when the cut was made */

/* The primary goes on alone, the backup hearing it no more. */
static int
s_alone(tw_fpair_t *p)
{
    (void)p;
    tw_fpair_backup_not_active();
    return tw_fpair_int(TW_H_MH_FRONTEND, "ha_sync") == 0 &&
           tw_fpair_int(TW_H_MH_BACKUP_FRONTEND, "ha_peer_alive") == 0;
}

/* Tasks keep ending while the pair is cut. */
static int
s_served_alone(tw_fpair_t *p)
{
    tw_fpair_backup_not_active();
    return tw_fault_completed(&p->f) >= s_cut_done + 200;
}

static int
s_followed(tw_fpair_t *p)
{
    (void)p;
    tw_fpair_backup_not_active();
    return tw_fpair_int(TW_H_MH_FRONTEND, "ha_sync") == 1;
}

static void
s_cut(tw_fpair_t *p)
{
    tw_fpair_script("cut", "broker", "backup");
    s_cut_done = tw_fault_completed(&p->f);
    TW_H_ASSERT_MSG(tw_fpair_poll_until(p, s_alone, 20000),
                    "the primary did not go on alone after the cut");
    uint64_t alone = tw_h_now_ms() - p->fault_at;
    /* Submit more meanwhile: the primary serves them alone. */
    tw_fault_submit(&p->f, p->c, &p->spec, 300);
    p->tasks += 300;
    TW_H_ASSERT_MSG(tw_fpair_poll_until(p, s_served_alone, 60000),
                    "tasks stopped ending while the pair was cut");
    tw_fpair_script("heal", "broker", "backup");
    uint64_t healed = tw_h_now_ms();
    TW_H_ASSERT_MSG(tw_fpair_poll_until(p, s_followed, 60000),
                    "the primary's ACKs never waited for the backup again "
                    "after the heal");
    printf("pair-cut-peers: the primary alone %llu ms after the cut; "
           "followed again %llu ms after the heal; the backup stayed "
           "passive\n",
           (unsigned long long)alone,
           (unsigned long long)(tw_h_now_ms() - healed));
    fflush(stdout);
}

int
main(void)
{
    tw_h_init("fault-pair-cut-peers");
    return tw_fpair_no_takeover_scenario("twha2c53", "pair-cut-peers", s_cut);
}

/*  tests/fault/54-pair-cut-workers.c - over network namespaces, the
 *  active of a broker pair cut from its workers while the pair still
 *  talks: the workers go to the passive, which refuses them naming the
 *  active (it still hears it): no takeover. After the heal the workers
 *  return and re-announce what they ran; nothing is lost (docs/HA.md
 *  section 6).
 *
 *  Halfway through the stream (tests/fault/pair.h, --replicate sync) the
 *  links between the broker host and every worker host are cut. The
 *  primary declares its workers dead; a worker log shows the backup's
 *  refusal; the backup stays passive, with its peer alive, all along
 *  (its ha.* events and its status are watched). Healed, the workers
 *  register with the primary again and the stream ends, every submission
 *  ok once, the stations running on the primary.
 */
#include "tests/fault/pair.h"
#include "tests/harness/multihost.h"

#include <stdio.h>

/* The primary counts no worker, and a worker was refused by the backup. */
static int
s_refused(tw_fpair_t *p)
{
    (void)p;
    tw_fpair_backup_not_active();
    if (tw_fpair_int(TW_H_MH_FRONTEND, "workers") != 0) {
        return 0;
    }
    char log[700];
    for (int i = 1; i <= 2; i++) {
        snprintf(log, sizeof log, "%s/log/w%d.log", tw_h_mh_state(), i);
        if (tw_h_mh_file_has(log, "is not the active broker")) {
            return 1;
        }
    }
    return 0;
}

static int
s_back(tw_fpair_t *p)
{
    (void)p;
    tw_fpair_backup_not_active();
    return tw_fpair_int(TW_H_MH_FRONTEND, "workers") == 2;
}

static void
s_cut(tw_fpair_t *p)
{
    tw_fpair_script("cut", "broker", "workers");
    TW_H_ASSERT_MSG(tw_fpair_poll_until(p, s_refused, 30000),
                    "the workers were not declared dead, or the backup "
                    "never refused them");
    uint64_t refused = tw_h_now_ms() - p->fault_at;
    TW_H_ASSERT_EQ(tw_fpair_int(TW_H_MH_BACKUP_FRONTEND, "ha_peer_alive"),
                   1);
    tw_fpair_script("heal", "broker", "workers");
    uint64_t healed = tw_h_now_ms();
    TW_H_ASSERT_MSG(tw_fpair_poll_until(p, s_back, 60000),
                    "the workers did not return to the primary");
    printf("pair-cut-workers: workers dead and refused by the backup "
           "%llu ms after the cut; back %llu ms after the heal; no "
           "takeover\n",
           (unsigned long long)refused,
           (unsigned long long)(tw_h_now_ms() - healed));
    fflush(stdout);
}

int
main(void)
{
    tw_h_init("fault-pair-cut-workers");
    return tw_fpair_no_takeover_scenario("twha2c54", "pair-cut-workers", s_cut);
}

/*  tests/fault/55-pair-restart-both.c - over network namespaces, both
 *  brokers of a pair SIGKILLed and started again together: they pick one
 *  active, the same on both sides, around the newest store; nothing
 *  acknowledged is lost (docs/HA.md section 2 rule 5, section 6).
 *
 *  Halfway through the stream (tests/fault/pair.h, --replicate sync) the
 *  backup and then the primary are killed; the two are started again at
 *  once. One must become active and the other passive and following; the
 *  client and the workers find the active, the client resends what was
 *  not acknowledged, the workers re-announce what they ran, and every
 *  submission ends ok once, the stations running on the active.
 */
#include "tests/fault/pair.h"
#include "tests/harness/multihost.h"

#include <string.h>

static const char *s_active; /* the frontend of the broker active after */

static int
s_settled(tw_fpair_t *p)
{
    (void)p;
    char a[32], b[32];
    tw_fpair_str(TW_H_MH_FRONTEND, "ha_state", a, sizeof a);
    tw_fpair_str(TW_H_MH_BACKUP_FRONTEND, "ha_state", b, sizeof b);
    if (strcmp(a, "active") == 0 && strcmp(b, "passive") == 0) {
        s_active = TW_H_MH_FRONTEND;
    } else if (strcmp(b, "active") == 0 && strcmp(a, "passive") == 0) {
        s_active = TW_H_MH_BACKUP_FRONTEND;
    }
    return s_active != NULL;
}

static void
s_restart_both(tw_fpair_t *p)
{
    tw_fpair_script("kill-broker", "backup", "KILL");
    tw_fpair_script("kill-broker", "broker", "KILL");
    tw_fpair_script("start-broker", "broker", NULL);
    tw_fpair_script("start-broker", "backup", NULL);
    TW_H_ASSERT_MSG(tw_fpair_poll_until(p, s_settled, 60000),
                    "the restarted pair did not settle on one active");
    tw_fpair_wait_str(p, s_active, "ha_follower", "following", 60000);
    uint64_t ms = tw_fpair_probe(p, 60000);
    printf("pair-restart-both: the %s is active again; a task accepted "
           "%llu ms after the kills\n",
           strcmp(s_active, TW_H_MH_FRONTEND) == 0 ? "primary" : "backup",
           (unsigned long long)ms);
    fflush(stdout);
}

int
main(void)
{
    tw_h_init("fault-pair-restart-both");
    static tw_fpair_t p;
    if (tw_fpair_up(&p, "twha2r55", "pair-restart-both", "sync", 2) ==
        TW_H_SKIP) {
        return TW_H_SKIP;
    }
    tw_fpair_stream(&p, 1500, p.tasks / 2, s_restart_both);
    tw_fpair_finish(&p, s_active);
    tw_fpair_down(&p);
    return 0;
}

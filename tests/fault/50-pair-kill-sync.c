/*  tests/fault/50-pair-kill-sync.c - over network namespaces, a broker
 *  pair's active SIGKILLed under --replicate sync: nothing acknowledged
 *  is lost, and the old active comes back passive
 *  (docs/HA.md section 6).
 *
 *  The stage and the steps are tw_fpair_kill_scenario's
 *  (tests/fault/pair.h): stations and a steady stream of sleep tasks on
 *  three worker hosts, the primary killed halfway, the backup taking over
 *  on the votes of the client and the workers, the failover time printed
 *  in heartbeats, the old primary started again and coming back passive.
 */
#include "tests/fault/pair.h"

int
main(void)
{
    tw_h_init("fault-pair-kill-sync");
    return tw_fpair_kill_scenario("twha2k50", "pair-kill-sync", "sync", 0);
}

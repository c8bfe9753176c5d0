/*  tests/fault/52-pair-wipe.c - over network namespaces, a broker
 *  pair's active SIGKILLed and its data directory deleted with it, under
 *  --replicate sync: nothing acknowledged is lost, and the wiped broker
 *  comes back passive, catches up and can take over in turn
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
    tw_h_init("fault-pair-wipe");
    return tw_fpair_kill_scenario("twha2k52", "pair-wipe", "sync", 1);
}

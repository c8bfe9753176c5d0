/*  tests/fault/51-pair-kill-async.c - over network namespaces, a broker
 *  pair's active SIGKILLed under --replicate async: what is lost is
 *  bounded and reported, and the old active comes back passive (keeping
 *  aside what it had that the new active never had)
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
    tw_h_init("fault-pair-kill-async");
    return tw_fpair_kill_scenario("twha2k51", "pair-kill-async", "async", 0);
}

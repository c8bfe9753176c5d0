/*  broker/state/salvage.h - what can be saved of a damaged store, copied into a
 *  new one.
 *
 *  `taskwheel-broker --salvage DIR --into NEWDIR` (broker/main.c) runs
 *  tw_store_salvage. It reads DIR/data.mdb through the bounds-checked page
 *  reader (pagefile.h) - never through LMDB, so no damage can make it
 *  fault - and walks every tree from the newest meta page. Where a page
 *  cannot be read it reports the keys around what was lost and goes on
 *  with the rest; every record it reaches is checked as the broker checks
 *  it at start (its checksum, then tw_verify_record) and, if intact,
 *  written to a fresh store in NEWDIR. Only records reachable from the
 *  trees are copied: stale copies on free pages (a task already collected,
 *  say) are never brought back.
 *
 *  It also converts: a version-1 store (records without checksums) is
 *  read with the same checks minus the checksum, and NEWDIR gets the
 *  current version.
 *
 *  The id and epoch counters of NEWDIR are the old ones or, if those were
 *  lost, computed past every task id and epoch saved, so nothing handed
 *  out before is handed out again. DIR is opened read-only and locked
 *  against a running broker; NEWDIR must not hold a store yet.
 */
#ifndef TW_BROKER_SALVAGE_H
#define TW_BROKER_SALVAGE_H

#include <stddef.h>
#include <stdio.h>

/* Copy what is intact. Prints one line per loss and a summary to `out`.
 * Returns 0 (everything copied), 1 (NEWDIR written, some records lost),
 * or a negative error with one sentence in `why` when nothing could be
 * done (DIR unreadable or in use, NEWDIR holding a store). */
int tw_store_salvage(const char *from, const char *into, FILE *out,
                     char *why, size_t wlen);

#endif /* TW_BROKER_SALVAGE_H */

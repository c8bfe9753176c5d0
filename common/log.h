/*  common/log.h - one logger for every process.
 *
 *  Lines are logfmt: `ts=... level=... id=... msg="..."`, one event a line.
 *  Levels use syslog's numbers. The macros check the level before they
 *  evaluate their arguments, so a disabled DEBUG line costs one compare.
 *  The sink is pluggable: stderr (default), syslog, or none. Each process
 *  configures the logger once at start; logging itself is thread-safe as far
 *  as the sink is (stdio and syslog both are).
 */
#ifndef TW_LOG_H
#define TW_LOG_H

#include <stdarg.h>

typedef enum {
    TW_LOG_ERR = 3,
    TW_LOG_WARN = 4,
    TW_LOG_NOTICE = 5,
    TW_LOG_INFO = 6,
    TW_LOG_DEBUG = 7
} tw_log_level_t;

typedef enum { TW_LOG_STDERR, TW_LOG_SYSLOG, TW_LOG_NULL } tw_log_sink_t;

/* The current threshold; lines above it are dropped. Default NOTICE. */
extern int tw_log_level;

/* Set the process name shown in each line and the sink. `ident` is copied. */
void tw_log_open(const char *ident, tw_log_sink_t sink);

/* Parse "err|warn|notice|info|debug" (or a number 3-7). Returns the level or
 * TW_EINVAL. */
int tw_log_level_parse(const char *s);

/* Write one line. `msgid` is a short dotted event name ("worker.down"). */
void tw_log(int level, const char *msgid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define TW_LOG(level, msgid, ...)                                            \
    do {                                                                     \
        if ((level) <= tw_log_level) {                                       \
            tw_log((level), (msgid), __VA_ARGS__);                           \
        }                                                                    \
    } while (0)

#define tw_err(id, ...) TW_LOG(TW_LOG_ERR, id, __VA_ARGS__)
#define tw_warn(id, ...) TW_LOG(TW_LOG_WARN, id, __VA_ARGS__)
#define tw_notice(id, ...) TW_LOG(TW_LOG_NOTICE, id, __VA_ARGS__)
#define tw_info(id, ...) TW_LOG(TW_LOG_INFO, id, __VA_ARGS__)
#define tw_debug(id, ...) TW_LOG(TW_LOG_DEBUG, id, __VA_ARGS__)

#endif /* TW_LOG_H */

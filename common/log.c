/*  common/log.c - logfmt lines to stderr or syslog.
 *
 *  The message is quoted and its quotes and newlines escaped, so a peer's
 *  string cannot forge a second log line.
 */
#include "common/log.h"
#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <sys/time.h>
#include <time.h>

int tw_log_level = TW_LOG_NOTICE;

static char s_ident[64] = "taskwheel";
static tw_log_sink_t s_sink = TW_LOG_STDERR;

static const char *s_names[] = {"emerg", "alert", "crit", "err",
                                "warn",  "notice", "info", "debug"};

void
tw_log_open(const char *ident, tw_log_sink_t sink)
{
    snprintf(s_ident, sizeof s_ident, "%s", ident ? ident : "taskwheel");
    s_sink = sink;
    if (sink == TW_LOG_SYSLOG) {
        openlog(s_ident, LOG_PID, LOG_DAEMON);
    }
}

int
tw_log_level_parse(const char *s)
{
    for (int i = TW_LOG_ERR; i <= TW_LOG_DEBUG; i++) {
        if (strcasecmp(s, s_names[i]) == 0) {
            return i;
        }
    }
    if (strcasecmp(s, "error") == 0 || strcasecmp(s, "warning") == 0) {
        return s[0] == 'e' || s[0] == 'E' ? TW_LOG_ERR : TW_LOG_WARN;
    }
    char *end;
    long v = strtol(s, &end, 10);
    if (*s && !*end && v >= TW_LOG_ERR && v <= TW_LOG_DEBUG) {
        return (int)v;
    }
    return TW_EINVAL;
}

void
tw_log(int level, const char *msgid, const char *fmt, ...)
{
    if (s_sink == TW_LOG_NULL) {
        return;
    }
    char raw[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);

    char esc[2100];
    size_t j = 0;
    for (size_t i = 0; raw[i] && j < sizeof esc - 3; i++) {
        char c = raw[i];
        if (c == '"' || c == '\\') {
            esc[j++] = '\\';
            esc[j++] = c;
        } else if (c == '\n' || c == '\r') {
            esc[j++] = '\\';
            esc[j++] = 'n';
        } else {
            esc[j++] = c;
        }
    }
    esc[j] = '\0';
    if (level < 0 || level > TW_LOG_DEBUG) {
        level = TW_LOG_ERR;
    }
    if (s_sink == TW_LOG_SYSLOG) {
        syslog(level, "level=%s id=%s msg=\"%s\"", s_names[level], msgid, esc);
        return;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "ts=%s.%03dZ level=%s proc=%s id=%s msg=\"%s\"\n", ts,
            (int)(tv.tv_usec / 1000), s_names[level], s_ident, msgid, esc);
}

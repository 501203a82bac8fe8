/*
 * log.h - levelled logging to stderr.
 *
 * The logger is a small struct that lives in the server context (no hidden
 * global): every module that logs reaches it through the server.  Lines are
 * "2026-11-24T08:00:00.123Z pigeond[PID]: LEVEL message" on a terminal or a
 * file; under systemd (JOURNAL_STREAM names our output's device and inode)
 * they are "<N>LEVEL message": the "<N>" syslog priority prefix journald
 * understands, without the timestamp and "pigeond[PID]:" it records itself.
 *
 * Logging is never on the per-message hot path; warnings that a client can
 * provoke over and over go through log_ratelimit_ok().
 */
#ifndef PIGEON_LOG_H
#define PIGEON_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum log_level {
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_INFO,
    LOG_LEVEL_NOTICE,
    LOG_LEVEL_WARNING,
    LOG_LEVEL_ERROR,
};

struct logger {
    enum log_level level; /* lines below it are dropped */
    bool journal;         /* "<N>" prefixes, no timestamps */
    FILE *out;            /* borrowed; stderr */
};

/* Sets up LG to write to OUT at LEVEL; detects journald from the environment. */
void log_init(struct logger *lg, FILE *out, enum log_level level);

/*
 * Logs one line at LEVEL (no trailing newline needed): one write, flushed.
 * Control characters in the message come out as \xNN; a line is cut at 1 KiB.
 */
void log_msg(const struct logger *lg, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(lg, ...)   log_msg((lg), LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(lg, ...)    log_msg((lg), LOG_LEVEL_INFO, __VA_ARGS__)
#define log_notice(lg, ...)  log_msg((lg), LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_warning(lg, ...) log_msg((lg), LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_error(lg, ...)   log_msg((lg), LOG_LEVEL_ERROR, __VA_ARGS__)

/* "debug", "info", ... Static. */
const char *log_level_name(enum log_level level);

/* Parses a level name. 0 and *OUT on success, -1 otherwise. */
int log_level_parse(const char *name, enum log_level *out);

/*
 * A token bucket for messages a client can provoke: at most BURST lines,
 * refilled at one per INTERVAL_MS.  log_ratelimit_ok() says whether to log
 * now, and counts what it suppressed (reported with the next line let through).
 * INTERVAL_MS 0 means no limit; BURST 0 (with an interval) lets nothing through.
 * The clock is the caller's (monotonic milliseconds), so tests can fake it.
 */
struct log_ratelimit {
    uint32_t burst;
    uint32_t interval_ms;
    uint32_t tokens;
    uint64_t last_ms;
    uint64_t suppressed;
};

void log_ratelimit_init(struct log_ratelimit *rl, uint32_t burst, uint32_t interval_ms);

/*
 * True when a line may be logged at NOW_MS; *SUPPRESSED then gets the number
 * of lines refused since the last one let through (log it as "N suppressed"
 * when nonzero).  On false, *SUPPRESSED gets that count including this one.
 * SUPPRESSED may be NULL.
 */
bool log_ratelimit_ok(struct log_ratelimit *rl, uint64_t now_ms, uint64_t *suppressed);

/*
 * For a timer that reports what a quiet spell left unsaid: true when lines
 * were suppressed and one may be logged at NOW_MS; it takes that line's
 * token, *SUPPRESSED gets the count, and the count starts again from 0.
 * False (and *SUPPRESSED 0) when nothing was suppressed or the bucket is
 * still empty; log_ratelimit_pending() then says whether to try again.
 */
bool log_ratelimit_flush(struct log_ratelimit *rl, uint64_t now_ms, uint64_t *suppressed);

/* True while lines suppressed by RL have not been reported. */
bool log_ratelimit_pending(const struct log_ratelimit *rl);

#endif

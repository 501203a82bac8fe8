/*
 * log.c - levelled logging to stderr (see log.h for the line format).
 *
 * Each call builds its whole line in a stack buffer and hands it to one
 * fwrite(), then flushes: on an unbuffered stderr that is one write(2), so
 * lines never interleave, not even with another process on the same pipe
 * (a line is shorter than PIPE_BUF).  A longer message is cut and ends in
 * "...".  Control characters in the message are written as \xNN, so text a
 * client sent can neither forge a line of its own nor split a journal entry.
 *
 * journald: systemd sets JOURNAL_STREAM=DEV:INODE in a service whose stderr
 * it connects to the journal.  The variable is inherited by children whose
 * stderr may point elsewhere, so, as systemd documents, it counts only when
 * the DEV:INODE match fstat() of our own output.  Then a line is "<N>LEVEL
 * message": the priority prefix journald parses, and no timestamp or
 * "pigeond[PID]:", which the journal records itself.
 */
#include "log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define LOG_IDENT    "pigeond"
#define LOG_LINE_MAX 1024 /* newline included; below PIPE_BUF (4096) */
#define LOG_CUT_MARK "..."

static const char *const level_names[] = {
    [LOG_LEVEL_DEBUG] = "debug",     [LOG_LEVEL_INFO] = "info",   [LOG_LEVEL_NOTICE] = "notice",
    [LOG_LEVEL_WARNING] = "warning", [LOG_LEVEL_ERROR] = "error",
};

/* syslog(3) priorities, which journald reads from a "<N>" prefix. */
static const int level_priorities[] = {
    [LOG_LEVEL_DEBUG] = 7,   [LOG_LEVEL_INFO] = 6,  [LOG_LEVEL_NOTICE] = 5,
    [LOG_LEVEL_WARNING] = 4, [LOG_LEVEL_ERROR] = 3,
};

/* ----------------------------------------------------------- levels ---- */

const char *log_level_name(enum log_level level)
{
    return (size_t)level < ARRAY_SIZE(level_names) ? level_names[level] : "unknown";
}

int log_level_parse(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < ARRAY_SIZE(level_names); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

/* ------------------------------------------------------------ setup ---- */

/* Parses "DEV:INODE" (decimal); false if malformed. */
static bool journal_stream_parse(const char *s, unsigned long long *dev, unsigned long long *ino)
{
    char *end;

    if (*s < '0' || *s > '9')
        return false;
    *dev = strtoull(s, &end, 10);
    if (*end != ':' || end[1] < '0' || end[1] > '9')
        return false;
    *ino = strtoull(end + 1, &end, 10);
    return *end == '\0';
}

/* True when OUT is the stream systemd connected to the journal. */
static bool journal_detect(FILE *out)
{
    const char *env = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    int fd;

    if (env == NULL || !journal_stream_parse(env, &dev, &ino))
        return false;
    fd = fileno(out);
    if (fd < 0 || fstat(fd, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(struct logger *lg, FILE *out, enum log_level level)
{
    lg->level = level;
    lg->out = out;
    lg->journal = journal_detect(out);
}

/* ------------------------------------------------------------ lines ---- */

/* Writes the line's prefix into BUF; returns its length (less than LEN). */
static size_t line_prefix(const struct logger *lg, enum log_level level, char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    if (lg->journal)
        return (size_t)snprintf(buf, len, "<%d>%s ", level_priorities[level], level_names[level]);
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, len - n, ".%03ldZ %s[%ld]: %s ", ts.tv_nsec / 1000000L,
                          LOG_IDENT, (long)getpid(), level_names[level]);
    return n;
}

/*
 * Appends MSG to BUF (holding LEN bytes, room for CAP) with control characters
 * escaped; returns the new length.  Sets *CUT when MSG did not fit.
 */
static size_t line_append(char *buf, size_t len, size_t cap, const char *msg, bool *cut)
{
    static const char hex[] = "0123456789abcdef";

    for (const unsigned char *c = (const unsigned char *)msg; *c; c++) {
        bool plain = (*c >= 0x20 && *c != 0x7f) || *c == '\t';
        size_t need = plain ? 1 : 4;

        if (len + need > cap) {
            *cut = true;
            break;
        }
        if (plain) {
            buf[len++] = (char)*c;
        } else {
            memcpy(buf + len, "\\x", 2);
            buf[len + 2] = hex[*c >> 4];
            buf[len + 3] = hex[*c & 0xf];
            len += 4;
        }
    }
    return len;
}

void log_msg(const struct logger *lg, enum log_level level, const char *fmt, ...)
{
    char msg[LOG_LINE_MAX], line[LOG_LINE_MAX];
    const size_t cap = sizeof(line) - 1; /* room left for the newline */
    bool cut = false;
    size_t len;
    va_list ap;
    int n;

    if (level < lg->level || (size_t)level >= ARRAY_SIZE(level_names))
        return;
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        snprintf(msg, sizeof(msg), "(unformattable message: %s)", fmt);
    cut = n >= (int)sizeof(msg);

    len = line_prefix(lg, level, line, sizeof(line));
    len = line_append(line, len, cap, msg, &cut);
    if (cut) {
        if (len > cap - strlen(LOG_CUT_MARK))
            len = cap - strlen(LOG_CUT_MARK);
        memcpy(line + len, LOG_CUT_MARK, strlen(LOG_CUT_MARK));
        len += strlen(LOG_CUT_MARK);
    }
    line[len++] = '\n';
    fwrite(line, 1, len, lg->out);
    fflush(lg->out);
}

/* -------------------------------------------------------- ratelimit ---- */

void log_ratelimit_init(struct log_ratelimit *rl, uint32_t burst, uint32_t interval_ms)
{
    rl->burst = burst;
    rl->interval_ms = interval_ms;
    rl->tokens = burst;
    rl->last_ms = 0;
    rl->suppressed = 0;
}

/* Adds a token per whole interval since the last refill, up to the burst. */
static void ratelimit_refill(struct log_ratelimit *rl, uint64_t now_ms)
{
    uint64_t add;

    if (now_ms <= rl->last_ms) /* no time passed, or a clock that stepped back */
        return;
    add = (now_ms - rl->last_ms) / rl->interval_ms;
    if (add == 0)
        return;
    if (add >= (uint64_t)(rl->burst - rl->tokens)) {
        rl->tokens = rl->burst;
        rl->last_ms = now_ms; /* a full bucket keeps no credit */
    } else {
        rl->tokens += (uint32_t)add;
        rl->last_ms += add * rl->interval_ms; /* keep the part interval */
    }
}

bool log_ratelimit_ok(struct log_ratelimit *rl, uint64_t now_ms, uint64_t *suppressed)
{
    uint64_t dummy;

    if (suppressed == NULL)
        suppressed = &dummy;
    if (rl->interval_ms == 0) { /* no limit */
        *suppressed = 0;
        return true;
    }
    ratelimit_refill(rl, now_ms);
    if (rl->tokens == 0) {
        *suppressed = ++rl->suppressed;
        return false;
    }
    rl->tokens--;
    *suppressed = rl->suppressed;
    rl->suppressed = 0;
    return true;
}

bool log_ratelimit_flush(struct log_ratelimit *rl, uint64_t now_ms, uint64_t *suppressed)
{
    *suppressed = 0;
    if (rl->suppressed == 0 || rl->interval_ms == 0)
        return false;
    ratelimit_refill(rl, now_ms);
    if (rl->tokens == 0)
        return false;
    rl->tokens--;
    *suppressed = rl->suppressed;
    rl->suppressed = 0;
    return true;
}

bool log_ratelimit_pending(const struct log_ratelimit *rl)
{
    return rl->suppressed > 0;
}

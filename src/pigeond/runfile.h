/*
 * runfile.h - the small files pigeond writes for other programs to read:
 * the ports file (--ports-file) and the pid file (--pid-file).
 *
 * Each is replaced whole and safely.  The text goes to a new file in the
 * target's directory, created by mkstemp: O_CREAT|O_EXCL under a random
 * name, so nothing planted there beforehand (a symlink to a file pigeond
 * may write, a FIFO, a file another user owns) is ever opened or
 * followed.  It is then renamed over the target, which replaces whatever
 * is at that name, a symlink included, without following it.  A reader
 * sees the old file or the new one, never a half-written one.
 */
#ifndef PIGEON_RUNFILE_H
#define PIGEON_RUNFILE_H

#include <stddef.h>

/*
 * Makes PATH hold exactly the LEN bytes at TEXT, mode 0666 less the umask
 * (as fopen would).  0, or -1 with the reason in WHY ("cannot write
 * PATH.XXXXXX: ..."); on failure PATH is untouched and no temporary file
 * is left behind.
 */
int runfile_write(const char *path, const char *text, size_t len, char *why, size_t why_len);

#endif

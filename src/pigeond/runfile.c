/*
 * runfile.c - writing the ports and pid files safely (see runfile.h).
 *
 * Why not fopen("PATH.tmp", "w"): it follows a symlink planted at that
 * name, so whoever can write the directory (a shared /tmp) could make
 * pigeond truncate and fill any file it may write.  mkstemp's O_EXCL
 * refuses any existing name, symlinks included, and its random suffix
 * leaves nothing to plant in advance.  mkstemp creates the file 0600; it
 * is widened to what fopen would have given (0666 less the umask), since
 * these files are for other programs to read.
 */
#include "runfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RUNFILE_SUFFIX ".XXXXXX"

/* Writes all LEN bytes of TEXT to FD: 0, or -1 with errno. */
static int write_all(int fd, const char *text, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, text, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        text += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The process's umask, read without changing it for longer than the call. */
static mode_t current_umask(void)
{
    mode_t mask = umask(022);

    umask(mask);
    return mask;
}

int runfile_write(const char *path, const char *text, size_t len, char *why, size_t why_len)
{
    char tmp[4096];
    int fd, saved;

    if (snprintf(tmp, sizeof(tmp), "%s" RUNFILE_SUFFIX, path) >= (int)sizeof(tmp)) {
        snprintf(why, why_len, "cannot write %s: %s", path, strerror(ENAMETOOLONG));
        return -1;
    }
    fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(why, why_len, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    if (fchmod(fd, 0666 & ~current_umask()) < 0 || write_all(fd, text, len) < 0) {
        saved = errno;
        close(fd);
        unlink(tmp);
        snprintf(why, why_len, "cannot write %s: %s", tmp, strerror(saved));
        return -1;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        saved = errno;
        unlink(tmp);
        snprintf(why, why_len, "cannot write %s: %s", path, strerror(saved));
        return -1;
    }
    return 0;
}

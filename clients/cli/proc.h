/*
 * proc.h - run a command with some bytes on its stdin and collect its
 * stdout, for `pigeon reply`.
 */
#ifndef PIGEON_CLI_PROC_H
#define PIGEON_CLI_PROC_H

#include <stddef.h>

#include "json.h"

/* Environment variables set for the command: NAME=VALUE pairs. */
struct proc_env {
    const char *name;
    const char *value;
};

/*
 * Runs ARGV (ARGV[0] searched in PATH) with INPUT[0..LEN) on its stdin and
 * its stdout appended to OUT (stderr is ours), with the N_ENV variables of
 * ENV set.  Writing and reading are interleaved, so a command that prints
 * before it has read all its input cannot deadlock.  Returns the command's
 * exit status (0..255; 128 + signal when killed; 127 when it could not be
 * run), or -1 when it could not be started (errno says why).
 * SIGPIPE must be ignored by the caller.
 */
int proc_run(char *const argv[], const struct proc_env *env, size_t n_env, const char *input,
             size_t len, struct strbuf *out);

#endif

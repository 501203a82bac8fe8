/*
 * proc.c - run a command as a filter (see proc.h).
 */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* In the child: wire the pipes to stdin and stdout, set the environment, exec. */
static void proc_child(char *const argv[], const struct proc_env *env, size_t n_env, int in_fd,
                       int out_fd)
{
    if (dup2(in_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0)
        _exit(127);
    for (size_t i = 0; i < n_env; i++)
        setenv(env[i].name, env[i].value, 1);
    execvp(argv[0], argv);
    _exit(127);
}

/* Feeds INPUT to TO and drains FROM into OUT until FROM ends. 0, or -1. */
static int proc_pump(int to, int from, const char *input, size_t len, struct strbuf *out)
{
    size_t off = 0;
    char buf[16384];

    if (len == 0) {
        close(to);
        to = -1;
    }
    while (from >= 0) {
        struct pollfd p[2] = {{.fd = from, .events = POLLIN}, {.fd = to, .events = POLLOUT}};
        if (poll(p, to >= 0 ? 2 : 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (to >= 0 && p[1].revents != 0) {
            ssize_t n = write(to, input + off, len - off);
            if (n > 0)
                off += (size_t)n;
            if ((n < 0 && errno != EINTR && errno != EAGAIN) || off == len) {
                close(to); /* done, or the command stopped reading */
                to = -1;
            }
        }
        if (p[0].revents != 0) {
            ssize_t n = read(from, buf, sizeof(buf));
            if (n > 0 && strbuf_add(out, buf, (size_t)n) < 0)
                n = -1;
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
                close(from);
                from = -1;
            }
        }
    }
    if (to >= 0)
        close(to);
    return 0;
}

int proc_run(char *const argv[], const struct proc_env *env, size_t n_env, const char *input,
             size_t len, struct strbuf *out)
{
    int in[2], outp[2], status;

    if (pipe2(in, O_CLOEXEC) < 0)
        return -1;
    if (pipe2(outp, O_CLOEXEC) < 0) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(in[0]);
        close(in[1]);
        close(outp[0]);
        close(outp[1]);
        return -1;
    }
    if (pid == 0)
        proc_child(argv, env, n_env, in[0], outp[1]);
    close(in[0]);
    close(outp[1]);
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    proc_pump(in[1], outp[0], input, len, out);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

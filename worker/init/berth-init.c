/*
 * berth-init: PID 1 of a berth-worker task container.
 *
 * The worker bind-mounts this static binary into every task container (read-only) and makes
 * it the container's process: `berth-init TASK ARGS...`. Like `docker run --init` (tini) it
 *   - forks and execs the task as its only direct child,
 *   - forwards TERM/INT/HUP/QUIT/USR1/USR2 to the task (PID 1 ignores signals it has no
 *     handler for, so without a forwarder `kill TERM` on the container would do nothing),
 *   - reaps every zombie (orphans re-parent to PID 1 inside the PID namespace),
 *   - exits with the task's status (128+N when the task died from signal N).
 * Concourse's own init (cmd/init/init.c) only ignores SIGCHLD and pauses, because its task is
 * a separate `exec`; berth runs the task as the container's process, so init must wait for it.
 *
 * It is static (no libc needed in the image) so it runs in busybox, musl and glibc images.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

int main(int argc, char **argv) {
    sigset_t all, old;
    pid_t child;
    int status = 0, i, sig;

    if (argc < 2) {
        fprintf(stderr, "berth-init: usage: berth-init PROGRAM [ARGS...]\n");
        return 2;
    }
    /* Block the signals we handle synchronously with sigwait, before forking, so none is lost
     * between fork and the wait loop. The child restores the old mask before exec. */
    sigemptyset(&all);
    for (i = 0; i < (int)(sizeof forwarded / sizeof forwarded[0]); i++)
        sigaddset(&all, forwarded[i]);
    sigaddset(&all, SIGCHLD);
    sigprocmask(SIG_BLOCK, &all, &old);

    child = fork();
    if (child < 0) {
        perror("berth-init: fork");
        return 2;
    }
    if (child == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(argv[1], argv + 1);
        fprintf(stderr, "berth-init: exec %s: %s\n", argv[1], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }

    for (;;) {
        if (sigwait(&all, &sig) != 0)
            continue;
        if (sig != SIGCHLD) {
            kill(child, sig);
            continue;
        }
        /* Reap everything that has exited; stop when the task itself is gone. */
        for (;;) {
            int st;
            pid_t p = waitpid(-1, &st, WNOHANG);
            if (p <= 0)
                break;
            if (p == child) {
                if (WIFEXITED(st))
                    status = WEXITSTATUS(st);
                else if (WIFSIGNALED(st))
                    status = 128 + WTERMSIG(st);
                /* Leftover background processes die with the PID namespace when we exit. */
                return status;
            }
        }
    }
}

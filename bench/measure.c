/*
 * measure: run a command N times and report, per run, what it cost.
 *
 *   measure [-n RUNS] [-w WARMUP] [-e STDERR_FILE] -- COMMAND [ARG...] [::: COMMAND [ARG...]]...
 *
 * One line per measured run on stdout:
 *   cmd=K wall_us=W cpu_us=C user_us=U sys_us=S maxrss_kb=R status=X
 *
 * With several commands (separated by a lone `:::`), the runs interleave:
 * round i runs command 1, 2, ..., K once each, so a burst of load on a busy
 * machine hits every command alike and the ratios of medians stay fair.
 * K counts from 1 in the order given.
 *
 * - wall: CLOCK_MONOTONIC from fork to the end of wait4.
 * - cpu: user + system time from wait4()'s rusage. The kernel fills it with
 *   RUSAGE_BOTH for the child, i.e. the child itself plus every descendant it
 *   (or they, transitively) waited for. A runtime's init, the container
 *   process and any helper it forks and reaps are therefore included; a
 *   process that is never reaped (a leaked daemon) is not.
 * - maxrss: the largest peak RSS of any single process in that same tree
 *   (ru_maxrss semantics), not a sum.
 * - status: the exit code, or 128+signal.
 *
 * The command's stdout goes to /dev/null and its stderr to STDERR_FILE
 * (default /dev/null) so a failing runtime can be diagnosed. Warm-up runs
 * are executed but not printed. The exit status of measure is 0 when every
 * run exited 0, 1 otherwise.
 *
 * A C helper rather than /usr/bin/time: time(1) prints wall time in 10 ms
 * steps, too coarse for a container start that takes a few milliseconds.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long us_of(struct timeval tv)
{
    return (long long)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* Run argv once; fill the result line. Returns the exit status. */
static int run_once(char **argv, const char *errfile, char *line, size_t len)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("measure: fork");
        exit(2);
    }
    if (pid == 0) {
        int out = open("/dev/null", O_WRONLY);
        int err = open(errfile, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int in = open("/dev/null", O_RDONLY);
        if (out < 0 || err < 0 || in < 0)
            _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    int wstatus;
    struct rusage ru;
    if (wait4(pid, &wstatus, 0, &ru) < 0) {
        perror("measure: wait4");
        exit(2);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long wall = (long long)(t1.tv_sec - t0.tv_sec) * 1000000 +
                     (t1.tv_nsec - t0.tv_nsec) / 1000;
    int status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus)
                                    : 128 + WTERMSIG(wstatus);
    long long user = us_of(ru.ru_utime), sys = us_of(ru.ru_stime);
    snprintf(line, len,
             "wall_us=%lld cpu_us=%lld user_us=%lld sys_us=%lld maxrss_kb=%ld status=%d",
             wall, user + sys, user, sys, ru.ru_maxrss, status);
    return status;
}

int main(int argc, char **argv)
{
    int runs = 30, warmup = 3, opt;
    const char *errfile = "/dev/null";
    while ((opt = getopt(argc, argv, "+n:w:e:")) != -1) {
        switch (opt) {
        case 'n': runs = atoi(optarg); break;
        case 'w': warmup = atoi(optarg); break;
        case 'e': errfile = optarg; break;
        default:
            fprintf(stderr, "usage: measure [-n RUNS] [-w WARMUP] [-e FILE] -- CMD [ARG...]\n");
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "measure: missing COMMAND\n");
        return 2;
    }
    /* Split the command list at each lone ":::" (NULL-terminating each). */
    char **cmds[64];
    int ncmds = 0;
    cmds[ncmds++] = argv + optind;
    for (int i = optind; i < argc; i++) {
        if (strcmp(argv[i], ":::") == 0) {
            argv[i] = NULL;
            if (ncmds == 64 || i + 1 >= argc) {
                fprintf(stderr, "measure: bad ::: list\n");
                return 2;
            }
            cmds[ncmds++] = argv + i + 1;
        }
    }
    char line[256];
    int failed = 0;
    for (int i = 0; i < warmup + runs; i++) {
        for (int k = 0; k < ncmds; k++) {
            int status = run_once(cmds[k], errfile, line, sizeof line);
            failed |= status != 0;
            if (i >= warmup) {
                printf("cmd=%d %s\n", k + 1, line);
                fflush(stdout);
            }
        }
    }
    return failed;
}

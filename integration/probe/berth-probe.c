/*
 * berth-probe: a tiny static program the end-to-end tests run *inside*
 * containers to ask the kernel what the sandbox really allows.
 *
 * One source, built three ways by `make fixtures` into build/probes/:
 *   berth-probe       gcc -static            (x86_64, glibc)
 *   berth-probe-musl  musl-gcc -static       (x86_64, musl)
 *   berth-probe-32    gcc -m32 -static       (i386, glibc: the x86 seccomp arch)
 * and copied into every fixture rootfs at /usr/bin/.
 *
 * Why a probe rather than shell tools: a seccomp verdict is an errno from one
 * raw syscall. libc wrappers (and busybox applets) add fallbacks that hide it:
 * glibc retries clone3 as clone on ENOSYS, so `sh -c true` succeeding tells a
 * test nothing about clone3. The probe calls syscall(2) directly and prints
 * what the kernel returned. (The idea follows runc's bats seccomp test
 * programs and youki's in-container `runtimetest`.)
 *
 * Output contract: each subcommand prints ONE line of space-separated
 * key=value pairs on stdout and exits 0, even when the probed operation
 * failed (that failure is the answer, in ret=/errno=). Exit 2 means bad usage,
 * exit 1 means the probe itself could not do its job (e.g. fork failed).
 * `errno=` is the number; `err=` the symbolic name when known, for humans.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* musl and older headers may lack these; the numbers are the same on
 * x86_64 and i386 (clone3 was added to every arch at 435 in Linux 5.3). */
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

extern char **environ;

/* ------------------------------------------------------------------ output */

/* Symbolic names for the errnos a sandbox test is likely to meet. */
static const char *errno_name(int e)
{
    switch (e) {
    case 0: return "0";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case E2BIG: return "E2BIG";
    case ENOEXEC: return "ENOEXEC";
    case EBADF: return "EBADF";
    case ECHILD: return "ECHILD";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EXDEV: return "EXDEV";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case ENOSPC: return "ENOSPC";
    case EROFS: return "EROFS";
    case ERANGE: return "ERANGE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOSYS: return "ENOSYS";
    case ELOOP: return "ELOOP";
    case EUSERS: return "EUSERS";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case ECONNREFUSED: return "ECONNREFUSED";
    default: return "?";
    }
}

/* Print the result of a raw syscall: ret=R errno=E err=NAME. */
static void print_result(const char *prefix, long ret, int err)
{
    printf("%sret=%ld errno=%d err=%s", prefix, ret, ret == -1 ? err : 0,
           errno_name(ret == -1 ? err : 0));
}

static int usage(const char *msg)
{
    if (msg)
        fprintf(stderr, "berth-probe: %s\n", msg);
    fprintf(stderr,
            "usage: berth-probe COMMAND [ARG...]\n"
            "  syscall NR [ARG...]    raw syscall(2); ARG is a number (decimal, 0x hex,\n"
            "                         negative), s:TEXT (pointer to a string) or\n"
            "                         b:SIZE (pointer to a zeroed buffer)\n"
            "  sigsys NR [ARG...]     like syscall, but catch SIGSYS and report it\n"
            "  clone3 [FLAGS]         raw clone3; the child _exits at once\n"
            "  clone [FLAGS]          raw legacy clone; the child _exits at once\n"
            "  fork                   fork(), child exits 0, wait for it\n"
            "  thread                 pthread_create + join\n"
            "  spawn PATH [ARG...]    posix_spawn and wait\n"
            "  unshare-user           unshare(CLONE_NEWUSER)\n"
            "  unshare FLAGS          unshare(FLAGS)\n"
            "  personality N          raw personality(N)\n"
            "  rlimit NAME            soft and hard limit (NOFILE, NPROC, ...)\n"
            "  caps                   CapInh/Prm/Eff/Bnd/Amb from /proc/self/status\n"
            "  status                 NoNewPrivs, Seccomp, Seccomp_filters, oom_score_adj\n"
            "  signals                SigBlk, SigIgn, SigCgt from /proc/self/status\n"
            "  tty                    which of fds 0-2 are terminals, and their names\n"
            "  ids                    uid, gid, effective ids, supplementary groups\n"
            "  fds                    open fds and their targets\n"
            "  ns                     namespace inode of each /proc/self/ns entry\n"
            "  hostname               nodename and domainname\n"
            "  cwd | umask | info     working dir | umask | libc, bits, machine, pid\n"
            "  sigwait                print ready=1, wait for a signal, print it\n"
            "  orphans N              leave N short-lived orphans for init to reap\n"
            "  bench NR ITERS [ARG..] time ITERS raw syscalls (for bench/, not tests)\n"
            "  getaddrinfo NAME       getaddrinfo(NAME, AF_UNSPEC): gai=OK addrs=A,B or\n"
            "                         gai=EAI_NONAME (the libc's resolver, as a program sees it)\n");
    return 2;
}

/* ------------------------------------------------------------------ parsing */

/* Parse a number: decimal, 0x hex, 0 octal, or negative. Exits on junk. */
static long long parse_num(const char *s)
{
    char *end;
    errno = 0;
    long long v;
    if (s[0] == '-')
        v = strtoll(s, &end, 0);
    else
        v = (long long)strtoull(s, &end, 0);
    if (errno || *s == '\0' || *end != '\0') {
        fprintf(stderr, "berth-probe: not a number: %s\n", s);
        exit(2);
    }
    return v;
}

/* Parse one syscall argument; see usage() for the s: and b: forms. The
 * buffers live until exit, which is fine for a one-shot program. */
static long parse_arg(const char *s)
{
    if (strncmp(s, "s:", 2) == 0)
        return (long)(uintptr_t)(s + 2);
    if (strncmp(s, "b:", 2) == 0) {
        long long size = parse_num(s + 2);
        void *buf = calloc(1, size > 0 ? (size_t)size : 1);
        if (!buf) {
            perror("berth-probe: calloc");
            exit(1);
        }
        return (long)(uintptr_t)buf;
    }
    return (long)parse_num(s);
}

/* Fill args[0..5] from argv (missing ones are 0). */
static void parse_args(int argc, char **argv, long args[6])
{
    if (argc > 6) {
        fprintf(stderr, "berth-probe: a syscall takes at most 6 arguments\n");
        exit(2);
    }
    for (int i = 0; i < 6; i++)
        args[i] = i < argc ? parse_arg(argv[i]) : 0;
}

/* --------------------------------------------------------- raw syscalls */

static int cmd_syscall(int argc, char **argv)
{
    if (argc < 1)
        return usage("syscall: missing NR");
    long nr = (long)parse_num(argv[0]);
    long a[6];
    parse_args(argc - 1, argv + 1, a);
    errno = 0;
    long ret = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    print_result("", ret, errno);
    printf("\n");
    return 0;
}

static volatile sig_atomic_t sigsys_seen;
static volatile sig_atomic_t sigsys_nr;
static volatile sig_atomic_t sigsys_arch;

static void on_sigsys(int sig, siginfo_t *info, void *uctx)
{
    (void)sig;
    (void)uctx;
    sigsys_seen = 1;
#ifdef si_syscall
    sigsys_nr = info->si_syscall;
    sigsys_arch = (sig_atomic_t)info->si_arch;
#else
    (void)info;
#endif
}

/* SCMP_ACT_TRAP delivers SIGSYS instead of running the syscall; report
 * whether that happened and which syscall/arch the kernel put in siginfo. */
static int cmd_sigsys(int argc, char **argv)
{
    if (argc < 1)
        return usage("sigsys: missing NR");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    if (sigaction(SIGSYS, &sa, NULL) != 0) {
        perror("berth-probe: sigaction(SIGSYS)");
        return 1;
    }
    long nr = (long)parse_num(argv[0]);
    long a[6];
    parse_args(argc - 1, argv + 1, a);
    errno = 0;
    long ret = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    print_result("", ret, errno);
    printf(" sigsys=%d si_syscall=%d si_arch=0x%x\n", (int)sigsys_seen,
           (int)sigsys_nr, (unsigned)sigsys_arch);
    return 0;
}

/* Wait for a child the probe created and describe how it ended. */
static void print_child_status(pid_t pid)
{
    int status;
    if (waitpid(pid, &status, __WALL) < 0) {
        printf(" wait_errno=%d", errno);
        return;
    }
    if (WIFEXITED(status))
        printf(" child_exit=%d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        printf(" child_signal=%d", WTERMSIG(status));
}

/* struct clone_args from linux/sched.h, written out so the probe builds
 * against musl, which ships no kernel headers. Version 0 is 64 bytes. */
struct probe_clone_args {
    uint64_t flags;
    uint64_t pidfd;
    uint64_t child_tid;
    uint64_t parent_tid;
    uint64_t exit_signal;
    uint64_t stack;
    uint64_t stack_size;
    uint64_t tls;
};

/* The syscall glibc >= 2.34 uses for pthread_create, fork and posix_spawn.
 * Without a stack and without CLONE_VM the child gets a copy of our memory
 * and returns 0 right here, like fork(). */
static int cmd_clone3(int argc, char **argv)
{
    struct probe_clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = argc > 0 ? (uint64_t)parse_num(argv[0]) : 0;
    ca.exit_signal = SIGCHLD;
    fflush(stdout);
    errno = 0;
    long ret = syscall(SYS_clone3, &ca, sizeof ca);
    if (ret == 0)
        _exit(0);
    int err = errno;
    print_result("", ret, err);
    if (ret > 0)
        print_child_status((pid_t)ret);
    printf("\n");
    return 0;
}

/* The legacy clone(2), which glibc falls back to when clone3 says ENOSYS.
 * Only flags and SIGCHLD are set; every pointer argument is 0, so the
 * argument order differences between arches don't matter. */
static int cmd_clone(int argc, char **argv)
{
    long flags = argc > 0 ? (long)parse_num(argv[0]) : 0;
    fflush(stdout);
    errno = 0;
    long ret = syscall(SYS_clone, flags | SIGCHLD, 0L, 0L, 0L, 0L);
    if (ret == 0)
        _exit(0);
    int err = errno;
    print_result("", ret, err);
    if (ret > 0)
        print_child_status((pid_t)ret);
    printf("\n");
    return 0;
}

static int cmd_fork(void)
{
    fflush(stdout);
    errno = 0;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    int err = errno;
    print_result("", pid < 0 ? -1 : 0, err);
    if (pid > 0)
        print_child_status(pid);
    printf("\n");
    return 0;
}

static void *thread_main(void *arg)
{
    return arg;
}

/* pthread_create is what broke in the clone3 incident: glibc 2.34+ calls
 * clone3 and only falls back to clone on ENOSYS, so an EPERM from a seccomp
 * profile that doesn't name clone3 makes every thread creation fail. */
static int cmd_thread(void)
{
    pthread_t t;
    int rc = pthread_create(&t, NULL, thread_main, (void *)0x2a);
    if (rc != 0) {
        printf("pthread_create=%d err=%s\n", rc, errno_name(rc));
        return 0;
    }
    void *out = NULL;
    int jrc = pthread_join(t, &out);
    printf("pthread_create=0 pthread_join=%d returned=%d\n", jrc,
           out == (void *)0x2a);
    return 0;
}

static int cmd_spawn(int argc, char **argv)
{
    if (argc < 1)
        return usage("spawn: missing PATH");
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
    printf("posix_spawn=%d err=%s", rc, errno_name(rc));
    if (rc == 0)
        print_child_status(pid);
    printf("\n");
    return 0;
}

static int cmd_unshare(long flags)
{
    errno = 0;
    long ret = syscall(SYS_unshare, flags);
    print_result("", ret, errno);
    printf("\n");
    return 0;
}

static int cmd_personality(int argc, char **argv)
{
    if (argc != 1)
        return usage("personality: need exactly one N");
    errno = 0;
    long ret = syscall(SYS_personality, (long)parse_num(argv[0]));
    print_result("", ret, errno);
    printf("\n");
    return 0;
}

/* --------------------------------------------------------- process state */

static const struct {
    const char *name;
    int resource;
} rlimits[] = {
    {"AS", RLIMIT_AS},           {"CORE", RLIMIT_CORE},
    {"CPU", RLIMIT_CPU},         {"DATA", RLIMIT_DATA},
    {"FSIZE", RLIMIT_FSIZE},     {"LOCKS", RLIMIT_LOCKS},
    {"MEMLOCK", RLIMIT_MEMLOCK}, {"MSGQUEUE", RLIMIT_MSGQUEUE},
    {"NICE", RLIMIT_NICE},       {"NOFILE", RLIMIT_NOFILE},
    {"NPROC", RLIMIT_NPROC},     {"RSS", RLIMIT_RSS},
    {"RTPRIO", RLIMIT_RTPRIO},   {"RTTIME", RLIMIT_RTTIME},
    {"SIGPENDING", RLIMIT_SIGPENDING}, {"STACK", RLIMIT_STACK},
};

static void print_limit(const char *key, rlim_t v)
{
    if (v == RLIM_INFINITY)
        printf("%s=unlimited", key);
    else
        printf("%s=%llu", key, (unsigned long long)v);
}

/* NAME is NOFILE or RLIMIT_NOFILE, any case (the OCI spec uses the latter). */
static int cmd_rlimit(int argc, char **argv)
{
    if (argc != 1)
        return usage("rlimit: need exactly one NAME");
    const char *name = argv[0];
    if (strncasecmp(name, "RLIMIT_", 7) == 0)
        name += 7;
    for (size_t i = 0; i < sizeof rlimits / sizeof rlimits[0]; i++) {
        if (strcasecmp(name, rlimits[i].name) != 0)
            continue;
        struct rlimit rl;
        if (getrlimit(rlimits[i].resource, &rl) != 0) {
            perror("berth-probe: getrlimit");
            return 1;
        }
        printf("name=RLIMIT_%s ", rlimits[i].name);
        print_limit("soft", rl.rlim_cur);
        printf(" ");
        print_limit("hard", rl.rlim_max);
        printf("\n");
        return 0;
    }
    return usage("rlimit: unknown NAME");
}

/* Print selected "Key:\tvalue" lines of /proc/self/status as key=value. */
static int print_status_keys(const char *const keys[], const char *const out[],
                             size_t n)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) {
        perror("berth-probe: /proc/self/status");
        return 1;
    }
    char *found[16] = {0};
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        for (size_t i = 0; i < n; i++) {
            if (strcmp(line, keys[i]) != 0)
                continue;
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            v[strcspn(v, "\n")] = '\0';
            /* "Groups: 1 2" style values: join with commas. */
            for (char *p = v; *p; p++)
                if (*p == ' ' || *p == '\t')
                    *p = ',';
            found[i] = strdup(v);
        }
    }
    fclose(f);
    for (size_t i = 0; i < n; i++)
        printf("%s%s=%s", i ? " " : "", out[i], found[i] ? found[i] : "none");
    return 0;
}

static int cmd_caps(void)
{
    static const char *const keys[] = {"CapInh", "CapPrm", "CapEff", "CapBnd",
                                       "CapAmb"};
    static const char *const out[] = {"CapInh", "CapPrm", "CapEff", "CapBnd",
                                      "CapAmb"};
    if (print_status_keys(keys, out, 5) != 0)
        return 1;
    printf("\n");
    return 0;
}

static int cmd_status(void)
{
    static const char *const keys[] = {"NoNewPrivs", "Seccomp",
                                       "Seccomp_filters"};
    static const char *const out[] = {"nnp", "seccomp", "seccomp_filters"};
    if (print_status_keys(keys, out, 3) != 0)
        return 1;
    char buf[32] = "none";
    int fd = open("/proc/self/oom_score_adj", O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        close(fd);
    }
    printf(" oom_score_adj=%s\n", buf);
    return 0;
}

/* Signal state a runtime hands to the container: runc and crun unblock
 * everything and reset handlers before execve, so a blocked or ignored signal
 * here would break `run`'s signal forwarding or `kill`. */
static int cmd_signals(void)
{
    static const char *const keys[] = {"SigBlk", "SigIgn", "SigCgt"};
    static const char *const out[] = {"SigBlk", "SigIgn", "SigCgt"};
    if (print_status_keys(keys, out, 3) != 0)
        return 1;
    printf("\n");
    return 0;
}

/* Whether stdio is a terminal (process.terminal / --console-socket) and
 * which one. */
static int cmd_tty(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        const char *name = isatty(fd) ? ttyname(fd) : NULL;
        printf("%sfd%d_tty=%d fd%d_name=%s", fd ? " " : "", fd, isatty(fd), fd,
               name ? name : "none");
    }
    printf("\n");
    return 0;
}

static int cmd_ids(void)
{
    printf("uid=%u gid=%u euid=%u egid=%u groups=", (unsigned)getuid(),
           (unsigned)getgid(), (unsigned)geteuid(), (unsigned)getegid());
    gid_t groups[NGROUPS_MAX];
    int n = getgroups(NGROUPS_MAX, groups);
    for (int i = 0; i < n; i++)
        printf("%s%u", i ? "," : "", (unsigned)groups[i]);
    printf("\n");
    return 0;
}

/* Every open fd except the one listing the directory. A runtime must leave
 * only stdio and --preserve-fds (CVE-2024-21626 leaked a host cgroup fd). */
static int cmd_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        perror("berth-probe: /proc/self/fd");
        return 1;
    }
    int self = dirfd(d);
    int fds[1024];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 1024) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        int fd = atoi(e->d_name);
        if (fd != self)
            fds[n++] = fd;
    }
    /* readdir order is the kernel's; sort for stable output. */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
            int t = fds[j];
            fds[j] = fds[j - 1];
            fds[j - 1] = t;
        }
    printf("count=%d", n);
    for (int i = 0; i < n; i++) {
        char path[64], target[PATH_MAX];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fds[i]);
        ssize_t len = readlink(path, target, sizeof target - 1);
        target[len > 0 ? len : 0] = '\0';
        /* Targets like "anon_inode:[eventfd]" contain no spaces; a path
         * could, so replace them to keep one key=value per word. */
        for (char *p = target; *p; p++)
            if (*p == ' ')
                *p = '_';
        printf(" fd%d=%s", fds[i], target);
    }
    printf("\n");
    closedir(d);
    return 0;
}

/* The inode of each namespace the process is in; two processes share a
 * namespace exactly when these numbers are equal. */
static int cmd_ns(void)
{
    static const char *const names[] = {"cgroup", "ipc", "mnt",  "net",
                                        "pid",    "time", "user", "uts"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[64];
        struct stat st;
        snprintf(path, sizeof path, "/proc/self/ns/%s", names[i]);
        if (stat(path, &st) == 0)
            printf("%s%s=%llu", i ? " " : "", names[i],
                   (unsigned long long)st.st_ino);
        else
            printf("%s%s=none", i ? " " : "", names[i]);
    }
    printf("\n");
    return 0;
}

static int cmd_hostname(void)
{
    struct utsname u;
    if (uname(&u) != 0) {
        perror("berth-probe: uname");
        return 1;
    }
    printf("hostname=%s domainname=%s\n", u.nodename, u.domainname);
    return 0;
}

static int cmd_cwd(void)
{
    char buf[PATH_MAX];
    if (!getcwd(buf, sizeof buf)) {
        printf("cwd= errno=%d err=%s\n", errno, errno_name(errno));
        return 0;
    }
    printf("cwd=%s\n", buf);
    return 0;
}

static int cmd_umask(void)
{
    mode_t m = umask(0);
    umask(m);
    printf("umask=%04o\n", (unsigned)m);
    return 0;
}

static int cmd_info(void)
{
    struct utsname u;
    uname(&u);
#if defined(__GLIBC__)
    const char *libc = "glibc";
#else
    const char *libc = "musl";
#endif
    printf("libc=%s bits=%d machine=%s pid=%d ppid=%d\n", libc,
           (int)(sizeof(long) * 8), u.machine, (int)getpid(), (int)getppid());
    return 0;
}

/* ------------------------------------------------------------ signals */

/* Block every signal, announce readiness, and report the first one that
 * arrives: lets a test check `run`/`kill` signal forwarding without races
 * (it sends only after reading ready=1). */
static int cmd_sigwait(void)
{
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    printf("ready=1\n");
    fflush(stdout);
    siginfo_t info;
    int sig;
    do
        sig = sigwaitinfo(&all, &info);
    while (sig < 0 && errno == EINTR);
    if (sig < 0) {
        perror("berth-probe: sigwaitinfo");
        return 1;
    }
    printf("signal=%d sender_pid=%d\n", sig, (int)info.si_pid);
    return 0;
}

/* Create N grandchildren whose parent exits first, so they are reparented
 * to the container's PID 1 and become zombies there unless it reaps. */
static int cmd_orphans(int argc, char **argv)
{
    if (argc != 1)
        return usage("orphans: need N");
    long n = (long)parse_num(argv[0]);
    fflush(stdout);
    pid_t mid = fork();
    if (mid < 0) {
        perror("berth-probe: fork");
        return 1;
    }
    if (mid == 0) {
        for (long i = 0; i < n; i++) {
            pid_t p = fork();
            if (p == 0) {
                /* Outlive the middle process so the reparenting happens. */
                usleep(100 * 1000);
                _exit(0);
            }
        }
        _exit(0);
    }
    waitpid(mid, NULL, 0);
    printf("orphans=%ld\n", n);
    return 0;
}

/* -------------------------------------------------------------- bench */

/* Time ITERS back-to-back raw syscalls. Only bench/ uses this: the tests
 * never assert on time. */
static int cmd_bench(int argc, char **argv)
{
    if (argc < 2)
        return usage("bench: need NR ITERS");
    long nr = (long)parse_num(argv[0]);
    long long iters = parse_num(argv[1]);
    long a[6];
    parse_args(argc - 2, argv + 2, a);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long ret = 0;
    int err = 0;
    for (long long i = 0; i < iters; i++) {
        ret = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        err = errno;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 +
                (double)(t1.tv_nsec - t0.tv_nsec);
    print_result("", ret, err);
    printf(" iters=%lld ns_total=%.0f ns_per_call=%.1f\n", iters, ns,
           iters > 0 ? ns / (double)iters : 0.0);
    return 0;
}

/* ------------------------------------------------------------ getaddrinfo */

/* getaddrinfo(NAME, AF_UNSPEC), the call every program makes. glibc and musl
 * differ on a half-broken answer: musl fails the whole name when either the A
 * or the AAAA query gets NXDOMAIN, glibc keeps the A answer. The DNS tests run
 * this probe from both libcs through berth-worker's proxy. One line:
 * `gai=OK addrs=198.51.100.10,...` or `gai=EAI_NONAME code=-2`. */
static const char *gai_name(int e)
{
    switch (e) {
    case 0: return "OK";
    case EAI_NONAME: return "EAI_NONAME";
    case EAI_AGAIN: return "EAI_AGAIN";
    case EAI_FAIL: return "EAI_FAIL";
    case EAI_FAMILY: return "EAI_FAMILY";
    case EAI_MEMORY: return "EAI_MEMORY";
    case EAI_SERVICE: return "EAI_SERVICE";
    case EAI_SYSTEM: return "EAI_SYSTEM";
#ifdef EAI_NODATA
    case EAI_NODATA: return "EAI_NODATA";
#endif
    default: return "EAI_OTHER";
    }
}

static int cmd_getaddrinfo(int argc, char **argv)
{
    if (argc != 1)
        return usage("getaddrinfo: need NAME");
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int e = getaddrinfo(argv[0], NULL, &hints, &res);
    if (e != 0) {
        printf("gai=%s code=%d\n", gai_name(e), e);
        return 0;
    }
    printf("gai=OK addrs=");
    const char *sep = "";
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        char buf[INET6_ADDRSTRLEN];
        const void *src = a->ai_family == AF_INET
            ? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
            : (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
        if (inet_ntop(a->ai_family, src, buf, sizeof buf)) {
            printf("%s%s", sep, buf);
            sep = ",";
        }
    }
    printf("\n");
    freeaddrinfo(res);
    return 0;
}

/* --------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage("missing COMMAND");
    const char *cmd = argv[1];
    int n = argc - 2;
    char **rest = argv + 2;

    if (strcmp(cmd, "syscall") == 0) return cmd_syscall(n, rest);
    if (strcmp(cmd, "sigsys") == 0) return cmd_sigsys(n, rest);
    if (strcmp(cmd, "clone3") == 0) return cmd_clone3(n, rest);
    if (strcmp(cmd, "clone") == 0) return cmd_clone(n, rest);
    if (strcmp(cmd, "fork") == 0) return cmd_fork();
    if (strcmp(cmd, "thread") == 0) return cmd_thread();
    if (strcmp(cmd, "spawn") == 0) return cmd_spawn(n, rest);
    if (strcmp(cmd, "unshare-user") == 0) return cmd_unshare(CLONE_NEWUSER);
    if (strcmp(cmd, "unshare") == 0) {
        if (n != 1)
            return usage("unshare: need FLAGS");
        return cmd_unshare((long)parse_num(rest[0]));
    }
    if (strcmp(cmd, "personality") == 0) return cmd_personality(n, rest);
    if (strcmp(cmd, "rlimit") == 0) return cmd_rlimit(n, rest);
    if (strcmp(cmd, "caps") == 0) return cmd_caps();
    if (strcmp(cmd, "status") == 0) return cmd_status();
    if (strcmp(cmd, "signals") == 0) return cmd_signals();
    if (strcmp(cmd, "tty") == 0) return cmd_tty();
    if (strcmp(cmd, "ids") == 0) return cmd_ids();
    if (strcmp(cmd, "fds") == 0) return cmd_fds();
    if (strcmp(cmd, "ns") == 0) return cmd_ns();
    if (strcmp(cmd, "hostname") == 0) return cmd_hostname();
    if (strcmp(cmd, "cwd") == 0) return cmd_cwd();
    if (strcmp(cmd, "umask") == 0) return cmd_umask();
    if (strcmp(cmd, "info") == 0) return cmd_info();
    if (strcmp(cmd, "sigwait") == 0) return cmd_sigwait();
    if (strcmp(cmd, "orphans") == 0) return cmd_orphans(n, rest);
    if (strcmp(cmd, "bench") == 0) return cmd_bench(n, rest);
    if (strcmp(cmd, "getaddrinfo") == 0) return cmd_getaddrinfo(n, rest);
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        usage(NULL);
        return 0;
    }
    return usage("unknown COMMAND");
}

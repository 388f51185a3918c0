// Child processes without Foundation's Process: its Linux implementation walks /proc/self/fd in the
// child-setup path with an over-read (swift-corelibs-foundation#5472) and keeps a monitoring thread;
// posix_spawn with closefrom does the same job in a few calls.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "CChildProcess.h"

int imaged_spawn(const char *path, char *const argv[], char *const envp[], int stderr_fd, pid_t *pid) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc) return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc) { posix_spawn_file_actions_destroy(&actions); return rc; }
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    if (!rc) rc = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    if (!rc) rc = posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    if (!rc) rc = posix_spawn_file_actions_adddup2(&actions, stderr_fd, 2);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    if (!rc) rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
#endif
    if (!rc) rc = posix_spawnattr_setsigmask(&attr, &none);
    if (!rc) rc = posix_spawnattr_setsigdefault(&attr, &all);
    if (!rc) rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (!rc) rc = posix_spawn(pid, path, &actions, &attr, argv, envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/// Waits until the child has exited without reaping it (its pid stays reserved); 1 exited, 0 timed out.
static int exited_within(pid_t pid, int timeout_ms, int use_pidfd) {
    long long deadline = now_ms() + timeout_ms;
#ifdef SYS_pidfd_open
    int pidfd = use_pidfd ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
    if (pidfd >= 0) {
        for (;;) {
            long long left = deadline - now_ms();
            struct pollfd p = { .fd = pidfd, .events = POLLIN };
            int n = poll(&p, 1, left > 0 ? (int)left : 0);
            if (n < 0 && errno == EINTR) continue;
            close(pidfd);
            return n > 0;
        }
    }
#endif
    // No pidfd (an old kernel or a seccomp filter): look every 10 ms.
    for (;;) {
        siginfo_t info = {0};
        if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid) return 1;
        if (now_ms() >= deadline) return 0;
        struct timespec tick = { 0, 10 * 1000000 };
        nanosleep(&tick, NULL);
    }
}

int imaged_wait_child(pid_t pid, int timeout_ms, int use_pidfd, int *status, int *killed) {
    *killed = 0;
    if (!exited_within(pid, timeout_ms, use_pidfd)) {
        kill(pid, SIGKILL);  // not reaped yet, so the pid is still this child's
        *killed = 1;
    }
    for (;;) {
        pid_t r = waitpid(pid, status, 0);
        if (r == pid) return 0;
        if (r < 0 && errno == EINTR) continue;
        return r < 0 ? errno : ECHILD;
    }
}

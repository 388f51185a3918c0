#ifndef CCHILDPROCESS_H
#define CCHILDPROCESS_H
#include <sys/types.h>

/// Starts `path` with `argv` and `envp` (both NULL-terminated): stdin and stdout on /dev/null, stderr on
/// `stderr_fd`, every other descriptor closed, no signal blocked or ignored (the server ignores SIGPIPE;
/// a child must not inherit that). Returns 0 and the child's pid in `*pid`, or an errno value.
int imaged_spawn(const char *path, char *const argv[], char *const envp[], int stderr_fd, pid_t *pid);

/// Waits for the child `pid` to exit, at most `timeout_ms` milliseconds; a child still running then is
/// killed (SIGKILL) and waited for. The wait sleeps on a pidfd; with `use_pidfd` 0, or where the kernel
/// has no pidfd_open, it looks every 10 ms instead. Returns 0 with the wait status in `*status` and `*killed` set to 1 when
/// the timeout killed it, or an errno value. The child is never signalled after it was reaped, so the
/// kill cannot reach another process that reused its pid.
int imaged_wait_child(pid_t pid, int timeout_ms, int use_pidfd, int *status, int *killed);

#endif

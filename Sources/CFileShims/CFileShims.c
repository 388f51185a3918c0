#define _GNU_SOURCE
#include <fcntl.h>
#include "CFileShims.h"

int imaged_start_writeback(int fd, int64_t offset, int64_t length) {
#ifdef __linux__
    return sync_file_range(fd, (off64_t)offset, (off64_t)length, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd; (void)offset; (void)length;
    return -1;
#endif
}

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int imaged_is_zero(const void *bytes, size_t length) {
    const unsigned char *b = bytes;
    size_t head = length < 16 ? length : 16;
    // Data blocks almost always fail in the first bytes, so the normal path stays cheap.
    for (size_t i = 0; i < head; i++) if (b[i]) return 0;
    // The first 16 bytes are zero and every byte equals the one 16 before it: all are zero.
    return length == head || memcmp(b, b + head, length - head) == 0;
}

static int write_all(int fd, const unsigned char *p, size_t n, int64_t at) {
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)at);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w; n -= (size_t)w; at += w;
    }
    return 0;
}

/// Hands each run of non-zero `block`-sized pieces of `bytes` to `put` (with its file offset), in
/// order; whole zero pieces, and a last partial piece of zeros, are skipped. Stops at put's first error.
typedef int (*run_writer)(void *context, const unsigned char *p, size_t n, int64_t at);
static int put_nonzero_runs(const unsigned char *b, size_t length, int64_t offset, size_t block,
                            run_writer put, void *context) {
    size_t run = 0, i = 0;  // [run, i): bytes to put in one call
    while (i < length) {
        size_t n = length - i < block ? length - i : block;
        if (imaged_is_zero(b + i, n)) {
            if (i > run && put(context, b + run, i - run, offset + (int64_t)run) != 0) return -1;
            run = i + n;
        }
        i += n;
    }
    if (length > run && put(context, b + run, length - run, offset + (int64_t)run) != 0) return -1;
    return 0;
}

static int put_buffered(void *context, const unsigned char *p, size_t n, int64_t at) {
    return write_all(*(int *)context, p, n, at);
}

int imaged_write_skipping_zero_blocks(int fd, const void *bytes, size_t length, int64_t offset, size_t block) {
    return put_nonzero_runs(bytes, length, offset, block, put_buffered, &fd);
}

int imaged_write_all(int fd, const void *bytes, size_t length, int64_t offset) {
    return write_all(fd, bytes, length, offset);
}

int imaged_open_direct(const char *path) {
#ifdef O_DIRECT
    return open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
#else
    (void)path;
    errno = EINVAL;
    return -1;
#endif
}

/// O_DIRECT wants the memory aligned too, and request bodies never are: each I/O thread copies
/// through one aligned buffer of its own, kept for the thread's life (the store's threads live as
/// long as the process), so memory stays one chunk per thread however many uploads run.
enum { direct_chunk = 1 << 20, direct_alignment = 4096 };
static __thread unsigned char *direct_staging;

struct direct_target { int direct_fd, fd, refused; };

/// Writes one run through `direct_fd` in chunks copied to the staging buffer; once the descriptor
/// refuses (EINVAL: the file system wants another alignment, or no direct I/O), through `fd`.
static int put_direct(void *context, const unsigned char *p, size_t n, int64_t at) {
    struct direct_target *t = context;
    if (!t->refused && direct_staging) {
        const unsigned char *q = p;
        size_t left = n;
        int64_t where = at;
        while (left > 0) {
            size_t m = left < direct_chunk ? left : direct_chunk;
            memcpy(direct_staging, q, m);
            if (write_all(t->direct_fd, direct_staging, m, where) != 0) {
                if (errno != EINVAL) return -1;
                t->refused = 1;  // the whole run again through the page cache: rewriting bytes is harmless
                break;
            }
            q += m; left -= m; where += (int64_t)m;
        }
        if (!t->refused) return 0;
    }
    return write_all(t->fd, p, n, at);
}

int imaged_write_blocks_direct(int direct_fd, int fd, const void *bytes, size_t length, int64_t offset,
                               size_t block, int skip_zeros) {
    if (!direct_staging) {
        void *buffer = NULL;
        // Without memory for it, this write goes through the page cache; a later one tries again.
        if (posix_memalign(&buffer, direct_alignment, direct_chunk) == 0) direct_staging = buffer;
    }
    struct direct_target target = { direct_fd, fd, 0 };
    int failed = skip_zeros ? put_nonzero_runs(bytes, length, offset, block, put_direct, &target)
                            : put_direct(&target, bytes, length, offset);
    return failed != 0 ? -1 : target.refused;
}

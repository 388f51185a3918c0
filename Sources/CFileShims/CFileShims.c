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

int imaged_write_skipping_zero_blocks(int fd, const void *bytes, size_t length, int64_t offset, size_t block) {
    const unsigned char *b = bytes;
    size_t run = 0, i = 0;  // [run, i): bytes to write in one pwrite
    while (i < length) {
        size_t n = length - i < block ? length - i : block;
        if (imaged_is_zero(b + i, n)) {
            if (i > run && write_all(fd, b + run, i - run, offset + (int64_t)run) != 0) return -1;
            run = i + n;
        }
        i += n;
    }
    if (length > run && write_all(fd, b + run, length - run, offset + (int64_t)run) != 0) return -1;
    return 0;
}

#ifndef CFILESHIMS_H
#define CFILESHIMS_H
#include <stddef.h>
#include <stdint.h>

/// Starts writeback of a file range without waiting (Linux sync_file_range SYNC_FILE_RANGE_WRITE),
/// which glibc only declares under _GNU_SOURCE. Returns 0, or -1 where unsupported or on error.
int imaged_start_writeback(int fd, int64_t offset, int64_t length);

/// 1 when the `length` bytes are all zero, else 0 (a memcmp-speed scan that stops at the first non-zero byte).
int imaged_is_zero(const void *bytes, size_t length);

/// pwrites `length` bytes at `offset` (a multiple of `block`) except the whole `block`-sized pieces
/// that are all zeros, which are skipped (they stay holes in a new file); the non-zero runs between
/// them go in one pwrite each. A last partial piece of zeros is skipped too. Returns 0, or -1 with errno.
int imaged_write_skipping_zero_blocks(int fd, const void *bytes, size_t length, int64_t offset, size_t block);

/// pwrites all `length` bytes at `offset` (retrying short writes and EINTR). Returns 0, or -1 with errno.
int imaged_write_all(int fd, const void *bytes, size_t length, int64_t offset);

/// Opens an existing file for writing with O_DIRECT (writes that bypass the page cache): a
/// descriptor, or -1 with errno where the file system or platform has no direct I/O.
int imaged_open_direct(const char *path);

/// Writes `length` bytes at `offset` through `direct_fd` (opened by imaged_open_direct), copied
/// through an aligned per-thread buffer; `length` and `offset` must be multiples of `block`, itself
/// a multiple of the device's logical block size (4096 is). With `skip_zeros`, whole zero blocks
/// are skipped as imaged_write_skipping_zero_blocks does. When the direct descriptor refuses a
/// write (EINVAL), the bytes go through `fd` instead and 1 is returned: the caller should stop using
/// `direct_fd`. Returns 0, 1, or -1 with errno.
int imaged_write_blocks_direct(int direct_fd, int fd, const void *bytes, size_t length, int64_t offset,
                               size_t block, int skip_zeros);

#endif

#ifndef CFILESHIMS_H
#define CFILESHIMS_H
#include <stdint.h>

/// Starts writeback of a file range without waiting (Linux sync_file_range SYNC_FILE_RANGE_WRITE),
/// which glibc only declares under _GNU_SOURCE. Returns 0, or -1 where unsupported or on error.
int imaged_start_writeback(int fd, int64_t offset, int64_t length);

#endif

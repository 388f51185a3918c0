#ifndef IMAGED_CCOMPRESSION_H
#define IMAGED_CCOMPRESSION_H
#include <stddef.h>
#include <stdint.h>

/// One streaming decoder of gzip/zlib, xz, zstd or bzip2 data (Debian's zlib, liblzma, libzstd,
/// libbz2). Concatenated members/streams/frames are decoded as one stream, as the command-line tools do.
typedef struct imaged_decoder imaged_decoder;

#define IMAGED_CODEC_GZIP 1
#define IMAGED_CODEC_XZ 2
#define IMAGED_CODEC_ZSTD 3
#define IMAGED_CODEC_BZIP2 4

#define IMAGED_DECODE_MORE 0        // give more input or more output room
#define IMAGED_DECODE_DONE 1        // (finish only) every stream ended and all output was given
#define IMAGED_DECODE_BUSY 2        // (threaded xz) no progress yet: the worker threads are still decoding
#define IMAGED_DECODE_CORRUPT (-1)  // not valid compressed data
#define IMAGED_DECODE_MEMLIMIT (-2) // the stream needs more memory than allowed (xz dictionary, zstd window)
#define IMAGED_DECODE_TRUNCATED (-3) // (finish only) the input ended inside a stream
#define IMAGED_DECODE_NOMEM (-4)    // allocation failed

/// NULL when the codec is unknown or the library could not allocate. `memlimit`: bytes the
/// decoder may use at most (xz memlimit; zstd window size).
imaged_decoder *imaged_decoder_new(int codec, uint64_t memlimit);

/// Decodes from `in` into `out`. `*in_used` and `*out_made` say how much was taken and given.
/// With `finish` the input has ended (pass in_len 0): call until DONE (or an error).
int imaged_decoder_run(imaged_decoder *d, const void *in, size_t in_len, size_t *in_used,
                       void *out, size_t out_cap, size_t *out_made, int finish);

void imaged_decoder_free(imaged_decoder *d);

#endif

#include "CCompression.h"

#include <bzlib.h>
#include <lzma.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

struct imaged_decoder {
    int codec;
    /// The last stream/member/frame ended and nothing of a next one was seen yet.
    int ended;
    /// bzip2 decoder initialised (it is re-initialised for each concatenated stream).
    int bz_live;
    z_stream z;
    lzma_stream x;
    ZSTD_DStream *zs;
    bz_stream bz;
};

imaged_decoder *imaged_decoder_new(int codec, uint64_t memlimit) {
    imaged_decoder *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->codec = codec;
    switch (codec) {
    case IMAGED_CODEC_GZIP:
        // 15 + 32: the largest window, gzip or zlib header detected automatically.
        if (inflateInit2(&d->z, 15 + 32) != Z_OK) { free(d); return NULL; }
        return d;
    case IMAGED_CODEC_XZ: {
        lzma_stream init = LZMA_STREAM_INIT;
        d->x = init;
#if LZMA_VERSION >= 50040002
        // liblzma >= 5.4 decodes the blocks of a multi-block file (`xz -T`, most published images) on
        // several threads; a single-block file, or blocks too large for the limit, is decoded on one
        // thread as before. Memory stays bounded by `memlimit` either way.
        uint32_t cpus = lzma_cputhreads();
        lzma_mt mt = {
            .flags = LZMA_CONCATENATED,
            .threads = cpus == 0 ? 1 : (cpus > 4 ? 4 : cpus),
            // Returns after 2 ms without progress (LZMA_OK, nothing used or made: IMAGED_DECODE_BUSY) instead
            // of blocking until a worker has output, so the caller can hand over more input and keep every
            // worker busy.
            .timeout = 2,
            .memlimit_threading = memlimit,
            .memlimit_stop = memlimit,
        };
        if (lzma_stream_decoder_mt(&d->x, &mt) != LZMA_OK) { free(d); return NULL; }
#else
        if (lzma_stream_decoder(&d->x, memlimit, LZMA_CONCATENATED) != LZMA_OK) { free(d); return NULL; }
#endif
        return d;
    }
    case IMAGED_CODEC_ZSTD: {
        d->zs = ZSTD_createDStream();
        if (!d->zs) { free(d); return NULL; }
        int windowLog = 10;
        while (windowLog < 31 && ((uint64_t)1 << (windowLog + 1)) <= memlimit) windowLog++;
        ZSTD_DCtx_setParameter(d->zs, ZSTD_d_windowLogMax, windowLog);
        return d;
    }
    case IMAGED_CODEC_BZIP2:
        if (BZ2_bzDecompressInit(&d->bz, 0, 0) != BZ_OK) { free(d); return NULL; }
        d->bz_live = 1;
        return d;
    default:
        free(d);
        return NULL;
    }
}

static int run_gzip(imaged_decoder *d, const void *in, size_t in_len, size_t *in_used,
                    void *out, size_t out_cap, size_t *out_made, int finish) {
    if (finish) return d->ended ? IMAGED_DECODE_DONE : IMAGED_DECODE_TRUNCATED;
    if (d->ended && in_len > 0) {  // the next member of a concatenated gzip file
        if (inflateReset(&d->z) != Z_OK) return IMAGED_DECODE_CORRUPT;
        d->ended = 0;
    }
    // zlib counts in uInt: feed at most 1 GiB per call (the caller loops).
    d->z.next_in = (Bytef *)in;
    d->z.avail_in = (uInt)(in_len > (1u << 30) ? (1u << 30) : in_len);
    d->z.next_out = out;
    d->z.avail_out = (uInt)(out_cap > (1u << 30) ? (1u << 30) : out_cap);
    uInt in_start = d->z.avail_in, out_start = d->z.avail_out;
    int rc = d->ended ? Z_STREAM_END : inflate(&d->z, Z_NO_FLUSH);
    *in_used = in_start - d->z.avail_in;
    *out_made = out_start - d->z.avail_out;
    switch (rc) {
    case Z_OK: case Z_BUF_ERROR: return IMAGED_DECODE_MORE;
    case Z_STREAM_END: d->ended = 1; return IMAGED_DECODE_MORE;
    case Z_MEM_ERROR: return IMAGED_DECODE_NOMEM;
    default: return IMAGED_DECODE_CORRUPT;
    }
}

static int run_xz(imaged_decoder *d, const void *in, size_t in_len, size_t *in_used,
                  void *out, size_t out_cap, size_t *out_made, int finish) {
    d->x.next_in = in;
    d->x.avail_in = in_len;
    d->x.next_out = out;
    d->x.avail_out = out_cap;
    lzma_ret rc = lzma_code(&d->x, finish ? LZMA_FINISH : LZMA_RUN);
    *in_used = in_len - d->x.avail_in;
    *out_made = out_cap - d->x.avail_out;
    switch (rc) {
    // No progress at all: the threaded decoder's timeout (its workers are busy), or the first call that
    // finds nothing to do (liblzma says LZMA_BUF_ERROR on the next such call, never after a timeout).
    case LZMA_OK: return (*in_used == 0 && *out_made == 0) ? IMAGED_DECODE_BUSY : IMAGED_DECODE_MORE;
    // With LZMA_CONCATENATED the end comes only with LZMA_FINISH, once all output was given.
    case LZMA_STREAM_END: return IMAGED_DECODE_DONE;
    case LZMA_BUF_ERROR: return finish ? IMAGED_DECODE_TRUNCATED : IMAGED_DECODE_MORE;
    case LZMA_MEMLIMIT_ERROR: return IMAGED_DECODE_MEMLIMIT;
    case LZMA_MEM_ERROR: return IMAGED_DECODE_NOMEM;
    default: return IMAGED_DECODE_CORRUPT;
    }
}

static int run_zstd(imaged_decoder *d, const void *in, size_t in_len, size_t *in_used,
                    void *out, size_t out_cap, size_t *out_made, int finish) {
    *in_used = 0;
    *out_made = 0;
    if (finish) return d->ended ? IMAGED_DECODE_DONE : IMAGED_DECODE_TRUNCATED;
    ZSTD_inBuffer input = { in, in_len, 0 };
    ZSTD_outBuffer output = { out, out_cap, 0 };
    size_t rc = ZSTD_decompressStream(d->zs, &output, &input);
    *in_used = input.pos;
    *out_made = output.pos;
    if (ZSTD_isError(rc)) {
        ZSTD_ErrorCode code = ZSTD_getErrorCode(rc);
        if (code == ZSTD_error_frameParameter_windowTooLarge) return IMAGED_DECODE_MEMLIMIT;
        if (code == ZSTD_error_memory_allocation) return IMAGED_DECODE_NOMEM;
        return IMAGED_DECODE_CORRUPT;
    }
    // 0: a frame is complete and flushed; input that follows starts the next frame.
    if (rc == 0) d->ended = 1;
    else if (input.pos > 0 || output.pos > 0) d->ended = 0;
    return IMAGED_DECODE_MORE;
}

static int run_bzip2(imaged_decoder *d, const void *in, size_t in_len, size_t *in_used,
                     void *out, size_t out_cap, size_t *out_made, int finish) {
    *in_used = 0;
    *out_made = 0;
    if (finish) return d->ended ? IMAGED_DECODE_DONE : IMAGED_DECODE_TRUNCATED;
    if (d->ended && in_len > 0) {  // the next stream of a multi-stream file (pbzip2)
        BZ2_bzDecompressEnd(&d->bz);
        memset(&d->bz, 0, sizeof d->bz);
        d->bz_live = 0;
        if (BZ2_bzDecompressInit(&d->bz, 0, 0) != BZ_OK) return IMAGED_DECODE_NOMEM;
        d->bz_live = 1;
        d->ended = 0;
    }
    if (d->ended) return IMAGED_DECODE_MORE;
    unsigned int in_cap = (unsigned int)(in_len > (1u << 30) ? (1u << 30) : in_len);
    unsigned int o_cap = (unsigned int)(out_cap > (1u << 30) ? (1u << 30) : out_cap);
    d->bz.next_in = (char *)in;
    d->bz.avail_in = in_cap;
    d->bz.next_out = out;
    d->bz.avail_out = o_cap;
    int rc = BZ2_bzDecompress(&d->bz);
    *in_used = in_cap - d->bz.avail_in;
    *out_made = o_cap - d->bz.avail_out;
    switch (rc) {
    case BZ_OK: return IMAGED_DECODE_MORE;
    case BZ_STREAM_END: d->ended = 1; return IMAGED_DECODE_MORE;
    case BZ_MEM_ERROR: return IMAGED_DECODE_NOMEM;
    default: return IMAGED_DECODE_CORRUPT;
    }
}

int imaged_decoder_run(imaged_decoder *d, const void *in, size_t in_len, size_t *in_used,
                       void *out, size_t out_cap, size_t *out_made, int finish) {
    switch (d->codec) {
    case IMAGED_CODEC_GZIP: return run_gzip(d, in, in_len, in_used, out, out_cap, out_made, finish);
    case IMAGED_CODEC_XZ: return run_xz(d, in, in_len, in_used, out, out_cap, out_made, finish);
    case IMAGED_CODEC_ZSTD: return run_zstd(d, in, in_len, in_used, out, out_cap, out_made, finish);
    case IMAGED_CODEC_BZIP2: return run_bzip2(d, in, in_len, in_used, out, out_cap, out_made, finish);
    default: return IMAGED_DECODE_CORRUPT;
    }
}

void imaged_decoder_free(imaged_decoder *d) {
    if (!d) return;
    switch (d->codec) {
    case IMAGED_CODEC_GZIP: inflateEnd(&d->z); break;
    case IMAGED_CODEC_XZ: lzma_end(&d->x); break;
    case IMAGED_CODEC_ZSTD: ZSTD_freeDStream(d->zs); break;
    case IMAGED_CODEC_BZIP2: if (d->bz_live) BZ2_bzDecompressEnd(&d->bz); break;
    }
    free(d);
}

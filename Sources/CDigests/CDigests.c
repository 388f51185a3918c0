// The low-level digest functions are deprecated in OpenSSL 3 but run the same assembly as EVP's
// default provider; they are used because their contexts are plain structs whose state can be saved
// and continued later (a resumable upload's digests, on any node), which EVP contexts cannot.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/evp.h>
#include <openssl/md5.h>
#include <openssl/opensslv.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <string.h>
#include "CDigests.h"

struct imaged_digest {
    int algorithm;
    union { MD5_CTX md5; SHA_CTX sha1; SHA256_CTX sha256; SHA512_CTX sha512; } ctx;
};

static size_t context_size(int algorithm) {
    switch (algorithm) {
    case IMAGED_MD5: return sizeof(MD5_CTX);
    case IMAGED_SHA1: return sizeof(SHA_CTX);
    case IMAGED_SHA256: return sizeof(SHA256_CTX);
    case IMAGED_SHA512: return sizeof(SHA512_CTX);
    default: return 0;
    }
}

imaged_digest *imaged_digest_new(int algorithm) {
    if (context_size(algorithm) == 0) return NULL;
    imaged_digest *d = OPENSSL_zalloc(sizeof *d);
    if (d == NULL) return NULL;
    d->algorithm = algorithm;
    int ok = algorithm == IMAGED_MD5 ? MD5_Init(&d->ctx.md5)
           : algorithm == IMAGED_SHA1 ? SHA1_Init(&d->ctx.sha1)
           : algorithm == IMAGED_SHA256 ? SHA256_Init(&d->ctx.sha256)
           : SHA512_Init(&d->ctx.sha512);
    if (ok != 1) { OPENSSL_free(d); return NULL; }
    return d;
}

int imaged_digest_update(imaged_digest *d, const void *bytes, size_t count) {
    switch (d->algorithm) {
    case IMAGED_MD5: return MD5_Update(&d->ctx.md5, bytes, count);
    case IMAGED_SHA1: return SHA1_Update(&d->ctx.sha1, bytes, count);
    case IMAGED_SHA256: return SHA256_Update(&d->ctx.sha256, bytes, count);
    default: return SHA512_Update(&d->ctx.sha512, bytes, count);
    }
}

unsigned int imaged_digest_final(imaged_digest *d, unsigned char *out) {
    switch (d->algorithm) {
    case IMAGED_MD5: return MD5_Final(out, &d->ctx.md5) == 1 ? MD5_DIGEST_LENGTH : 0;
    case IMAGED_SHA1: return SHA1_Final(out, &d->ctx.sha1) == 1 ? SHA_DIGEST_LENGTH : 0;
    case IMAGED_SHA256: return SHA256_Final(out, &d->ctx.sha256) == 1 ? SHA256_DIGEST_LENGTH : 0;
    default: return SHA512_Final(out, &d->ctx.sha512) == 1 ? SHA512_DIGEST_LENGTH : 0;
    }
}

void imaged_digest_free(imaged_digest *d) {
    if (d == NULL) return;
    OPENSSL_cleanse(d, sizeof *d);
    OPENSSL_free(d);
}

/* A saved state: a header naming the layout (magic, OpenSSL's version, algorithm, context size),
   then the context's bytes. Restoring refuses any other layout, so a state saved by a node built
   against another OpenSSL is refused instead of being misread. */
struct state_header { uint32_t magic; uint32_t algorithm; uint64_t openssl; uint64_t size; };
#define STATE_MAGIC 0x696d6764u  /* "imgd" */

size_t imaged_digest_state_size(int algorithm) {
    size_t n = context_size(algorithm);
    return n == 0 ? 0 : sizeof(struct state_header) + n;
}

size_t imaged_digest_save(const imaged_digest *d, unsigned char *out, size_t capacity) {
    size_t n = context_size(d->algorithm);
    if (capacity < sizeof(struct state_header) + n) return 0;
    struct state_header h = { STATE_MAGIC, (uint32_t)d->algorithm, (uint64_t)OPENSSL_VERSION_NUMBER, (uint64_t)n };
    memcpy(out, &h, sizeof h);
    memcpy(out + sizeof h, &d->ctx, n);
    return sizeof h + n;
}

imaged_digest *imaged_digest_restore(int algorithm, const unsigned char *state, size_t count) {
    size_t n = context_size(algorithm);
    struct state_header h;
    if (n == 0 || count != sizeof h + n) return NULL;
    memcpy(&h, state, sizeof h);
    if (h.magic != STATE_MAGIC || h.algorithm != (uint32_t)algorithm || h.openssl != (uint64_t)OPENSSL_VERSION_NUMBER
        || h.size != (uint64_t)n) return NULL;
    imaged_digest *d = OPENSSL_zalloc(sizeof *d);
    if (d == NULL) return NULL;
    d->algorithm = algorithm;
    memcpy(&d->ctx, state + sizeof h, n);
    return d;
}

int imaged_pbkdf2_sha256(const char *password, size_t password_len, const unsigned char *salt, size_t salt_len,
                         unsigned int iterations, unsigned char *out, size_t out_len) {
    if (iterations == 0 || password_len > 0x7fffffff || salt_len > 0x7fffffff || out_len > 0x7fffffff) return 0;
    return PKCS5_PBKDF2_HMAC(password, (int)password_len, salt, (int)salt_len, (int)iterations, EVP_sha256(),
                             (int)out_len, out);
}

int imaged_random_bytes(unsigned char *out, size_t count) {
    if (count > 0x7fffffff) return 0;
    return RAND_bytes(out, (int)count);
}

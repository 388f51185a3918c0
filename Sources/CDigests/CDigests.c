#include <openssl/evp.h>
#include <openssl/rand.h>
#include "CDigests.h"

struct imaged_digest { EVP_MD_CTX *ctx; };

imaged_digest *imaged_digest_new(int algorithm) {
    const EVP_MD *md = algorithm == IMAGED_MD5 ? EVP_md5()
                     : algorithm == IMAGED_SHA256 ? EVP_sha256()
                     : algorithm == IMAGED_SHA512 ? EVP_sha512()
                     : algorithm == IMAGED_SHA1 ? EVP_sha1() : NULL;
    if (md == NULL) return NULL;
    imaged_digest *d = OPENSSL_malloc(sizeof *d);
    if (d == NULL) return NULL;
    d->ctx = EVP_MD_CTX_new();
    if (d->ctx == NULL || EVP_DigestInit_ex(d->ctx, md, NULL) != 1) {
        EVP_MD_CTX_free(d->ctx);
        OPENSSL_free(d);
        return NULL;
    }
    return d;
}

int imaged_digest_update(imaged_digest *d, const void *bytes, size_t count) {
    return EVP_DigestUpdate(d->ctx, bytes, count);
}

unsigned int imaged_digest_final(imaged_digest *d, unsigned char *out) {
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(d->ctx, out, &length) != 1) return 0;
    return length;
}

void imaged_digest_free(imaged_digest *d) {
    if (d == NULL) return;
    EVP_MD_CTX_free(d->ctx);
    OPENSSL_free(d);
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

#ifndef CDIGESTS_H
#define CDIGESTS_H
#include <stddef.h>

/// Streaming digests through the system's OpenSSL libcrypto, which picks the fastest code for this
/// CPU (AVX2 SHA-512 on AMD too, where BoringSSL falls back to scalar code). A digest's state can be
/// saved and restored, so a resumable upload continues its digests without re-reading its bytes.
typedef struct imaged_digest imaged_digest;

enum { IMAGED_MD5 = 0, IMAGED_SHA256 = 1, IMAGED_SHA512 = 2, IMAGED_SHA1 = 3 };

/// NULL when the algorithm is unknown.
imaged_digest *imaged_digest_new(int algorithm);
/// 1 on success.
int imaged_digest_update(imaged_digest *d, const void *bytes, size_t count);
/// Writes the digest (at most 64 bytes) and returns its length, or 0 on failure. Once per digest.
unsigned int imaged_digest_final(imaged_digest *d, unsigned char *out);
void imaged_digest_free(imaged_digest *d);
/// Bytes a saved state of `algorithm` takes (0: unknown algorithm).
size_t imaged_digest_state_size(int algorithm);
/// Saves the running state into `out`; returns its length, or 0 when `capacity` is too small.
size_t imaged_digest_save(const imaged_digest *d, unsigned char *out, size_t capacity);
/// A digest continuing a saved state; NULL when the state is not one this build saved for `algorithm`.
imaged_digest *imaged_digest_restore(int algorithm, const unsigned char *state, size_t count);

/// PBKDF2-HMAC-SHA256 (PKCS #5) into `out` (`out_len` bytes). 1 on success.
int imaged_pbkdf2_sha256(const char *password, size_t password_len, const unsigned char *salt, size_t salt_len,
                         unsigned int iterations, unsigned char *out, size_t out_len);
/// `count` bytes from OpenSSL's CSPRNG. 1 on success.
int imaged_random_bytes(unsigned char *out, size_t count);

#include <stdint.h>
/// CRC-32C of `count` bytes, continuing `crc` (0 to start). Hardware instructions where the CPU has them.
uint32_t imaged_crc32c(uint32_t crc, const void *bytes, size_t count);
/// The image cache's checksum of one block: the CRC-32C of the CRC-32Cs of its three equal lanes (the
/// last takes the remainder), computed side by side (about three times one CRC's speed).
uint32_t imaged_block_sum(const void *bytes, size_t count);

#endif

// In-process speed of MD5 / SHA-512 / SHA-256 as imaged computes them: swift-crypto's vendored
// BoringSSL (CCryptoBoringSSL), linked from the objects of the release build. bench/data.sh builds
// it (information next to `openssl speed`, which may pick other code paths on the same CPU).
//
//   cc -O2 -I<swift-crypto>/Sources/CCryptoBoringSSL/include bench/digest_speed.c libbssl.a -lstdc++ -lpthread
//   ./digest_speed md5|sha512|sha256 [seconds]      -> "<alg> <MB/s>" (10^6 bytes/s, 16 KiB updates)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "CCryptoBoringSSL_md5.h"
#include "CCryptoBoringSSL_sha.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s md5|sha512|sha256 [seconds]\n", argv[0]); return 2; }
    const char *alg = argv[1];
    double secs = argc > 2 ? atof(argv[2]) : 3;
    enum { BLOCK = 16384 };
    static uint8_t buf[BLOCK];
    for (size_t i = 0; i < BLOCK; i++) buf[i] = (uint8_t)(i * 131 + 7);
    MD5_CTX md5; SHA512_CTX sha512; SHA256_CTX sha256;
    uint8_t out[64];
    int which = !strcmp(alg, "md5") ? 0 : !strcmp(alg, "sha512") ? 1 : !strcmp(alg, "sha256") ? 2 : -1;
    if (which < 0) { fprintf(stderr, "unknown digest %s\n", alg); return 2; }
    if (which == 0) MD5_Init(&md5); else if (which == 1) SHA512_Init(&sha512); else SHA256_Init(&sha256);
    double t0 = now(), t;
    long blocks = 0;
    do {
        for (int i = 0; i < 64; i++) {
            if (which == 0) MD5_Update(&md5, buf, BLOCK);
            else if (which == 1) SHA512_Update(&sha512, buf, BLOCK);
            else SHA256_Update(&sha256, buf, BLOCK);
        }
        blocks += 64;
        t = now();
    } while (t - t0 < secs);
    if (which == 0) MD5_Final(out, &md5); else if (which == 1) SHA512_Final(out, &sha512); else SHA256_Final(out, &sha256);
    printf("%s %.1f\n", alg, blocks * (double)BLOCK / (t - t0) / 1e6);
    return out[0] == 0x100; // keep the result alive
}

// libFuzzer's driver, called by the fuzz targets' main in fuzzing builds (`-sanitize=fuzzer` links
// it). SwiftPM names every executable's entry point itself, so the targets cannot rely on
// libFuzzer's own main; they pass their test function to the driver instead.
#ifndef CFUZZER_H
#define CFUZZER_H
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif

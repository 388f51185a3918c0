// Only the header matters: libFuzzer defines LLVMFuzzerRunDriver.
#include "CFuzzer.h"

// libFuzzer glue. SwiftPM names every executable's entry point itself
// (main=<Target>_main), so a fuzz target keeps a main.swift that calls
// bloo_fuzz_main, and defines LLVMFuzzerTestOneInput with @_cdecl.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline int bloo_fuzz_main(int argc, char **argv) {
    return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput);
}

// Fuzz target: the checkpoint reader and validator (checkpoint/reader.h) on
// arbitrary file contents, usually a mutated small checkpoint, exactly as a
// damaged file on disk reaches it. The integrity header's digest is checked
// before HDF5 parses anything, so a mutated file is refused with a message
// and HDF5 1.10's own parsers (which crash on damaged metadata) are never
// reached with damaged bytes; checkpoint_hdf5 fuzzes past the digest.
#include <cstdint>

#include "tests/fuzz/checkpoint_reader_checks.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mla::fuzz::ExerciseCheckpointReader(mla::fuzz::WriteScratch(data, size, ".h5"));
  return 0;
}

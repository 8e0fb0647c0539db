// Fuzz target: the checkpoint reader on mutated HDF5 bytes that carry a valid
// integrity header. The input is the HDF5 part of a checkpoint (the bytes
// after the header); the harness writes a header whose size and digest match
// them, as a deliberately forged file would, so the production path
// (checkpoint_reader_checks.h) hands the mutated bytes to HDF5. HDF5 1.10
// crashes on some of them inside its own metadata parsers
// (tests/fuzz/hdf5-crashes/); this target documents that remaining limit
// (docs/reliability.md) and is not in the CI set: run it by name.
#include <cstdint>
#include <string>

#include "checkpoint/integrity.h"
#include "tests/fuzz/checkpoint_reader_checks.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string file(static_cast<size_t>(mla::ckpt::kHeaderBytes), '\0');
  file.append(reinterpret_cast<const char*>(data), size);
  const mla::ckpt::IntegrityHeader header{static_cast<int64_t>(file.size()), mla::ckpt::DigestOfImage(file)};
  const auto bytes = mla::ckpt::EncodeIntegrityHeader(header);
  file.replace(0, bytes.size(), bytes.data(), bytes.size());
  mla::fuzz::ExerciseCheckpointReader(
      mla::fuzz::WriteScratch(reinterpret_cast<const uint8_t*>(file.data()), file.size(), ".h5"));
  return 0;
}

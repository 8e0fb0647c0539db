// Fuzz target: the checkpoint reader and validator (checkpoint/reader.h) on
// arbitrary file contents, usually a mutated small checkpoint. Open must
// reject the file with a message or give a layout that tiles the buffer;
// then reading every range, state array and the tokenizer, and
// VerifyCheckpoint, must return (an error is fine) without crashing. HDF5
// itself is not instrumented; what is checked is mlatrain's handling of what
// HDF5 returns.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "checkpoint/reader.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mla::fuzz::WriteScratch(data, size, ".h5");
  auto reader = mla::ckpt::CheckpointReader::Open(path);
  if (!reader.ok()) {
    MLA_FUZZ_CHECK(!reader.status().message().empty(), "error without a message");
    return 0;
  }
  int64_t next = 0;
  for (const mla::ckpt::TensorSpec& t : reader->layout()) {
    MLA_FUZZ_CHECK(t.offset == next, "offsets do not tile the buffer");
    next += t.numel();
  }
  MLA_FUZZ_CHECK(next == reader->total(), "total differs from the layout");
  MLA_FUZZ_CHECK(reader->ExpectLayout(reader->layout()).ok(), "layout differs from itself");
  // Bounded by Open (kMax* in checkpoint/format.h); read in pieces anyway so
  // an accepted huge total costs little memory.
  std::vector<float> buf(static_cast<size_t>(std::min<int64_t>(reader->total(), 4096)));
  for (auto which : {mla::ckpt::FlatBuffer::kParams, mla::ckpt::FlatBuffer::kAdamM,
                     mla::ckpt::FlatBuffer::kAdamV}) {
    for (int64_t lo = 0; lo < std::min<int64_t>(reader->total(), 1 << 16); lo += buf.size()) {
      const int64_t n = std::min<int64_t>(buf.size(), reader->total() - lo);
      if (!reader->ReadRange(which, lo, absl::MakeSpan(buf.data(), n)).ok()) break;
    }
  }
  for (const std::string& name : reader->state_names()) (void)reader->ReadState(name);
  (void)reader->ReadTokenizerModel();
  // Verification reads every element; keep each input fast.
  if (reader->total() <= (1 << 20)) (void)mla::ckpt::VerifyCheckpoint(path, {});
  return 0;
}

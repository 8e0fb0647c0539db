#pragma once
// Shared by the checkpoint fuzz targets: everything a program may do with a
// checkpoint file through the production reader (checkpoint/reader.h), with
// the invariants an accepted file must satisfy. Open must reject the file with
// a message or give a layout that tiles the buffer; reading every range,
// state array and the tokenizer, and VerifyCheckpoint, must then return (an
// error is fine) without crashing. Not thread-safe (one input at a time).
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "checkpoint/reader.h"
#include "tests/fuzz/fuzz_util.h"

namespace mla::fuzz {

inline void ExerciseCheckpointReader(const std::string& path) {
  auto reader = mla::ckpt::CheckpointReader::Open(path);
  if (!reader.ok()) {
    MLA_FUZZ_CHECK(!reader.status().message().empty(), "error without a message");
    return;
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
  if (reader->total() <= (1 << 20)) (void)mla::ckpt::VerifyCheckpoint(*reader, {});
}

}  // namespace mla::fuzz

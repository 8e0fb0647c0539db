// Fuzz target: the token shard reader (runtime/data/token_shard.h) on
// arbitrary file contents. Open and ReadShardHeader must either reject the
// file or return a shard whose header, size and tokens agree with the bytes.
#include <cstdint>
#include <cstring>

#include "runtime/data/token_shard.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mla::fuzz::WriteScratch(data, size, ".bin");
  auto header = mla::ReadShardHeader(path);
  auto shard = mla::TokenShard::Open(path);
  if (shard.ok()) {
    MLA_FUZZ_CHECK(header.ok(), "Open accepted a file ReadShardHeader rejects");
    const mla::ShardHeader& h = shard->header();
    MLA_FUZZ_CHECK(size == mla::kShardHeaderBytes + 2 * h.token_count, "size is not 64 + 2N");
    MLA_FUZZ_CHECK(h.vocab_size >= 1 && h.vocab_size <= mla::kShardMaxVocab, "vocab out of range");
    MLA_FUZZ_CHECK(h.eos_id < h.vocab_size, "eos >= vocab");
    MLA_FUZZ_CHECK(std::memcmp(data, mla::kShardMagic, 8) == 0, "bad magic accepted");
    MLA_FUZZ_CHECK(mla::Fnv1a64(data + 64, size - 64) == h.checksum, "checksum not checked");
    for (uint16_t t : shard->tokens()) MLA_FUZZ_CHECK(t < h.vocab_size, "token id >= vocab");
  }
  return 0;
}

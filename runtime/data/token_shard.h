#pragma once
// Token shards: the on-disk format of tokenized corpora (docs/data-format.md,
// version 1), a validating memory-mapped reader and a streaming writer.
//
//   offset  size  field
//   0       8     magic "MLATOKS\0"
//   8       4     format version (uint32, = kShardVersion)
//   12      4     header size in bytes (uint32, = 64)
//   16      4     vocab size V (uint32, 1..65536)
//   20      4     EOS token id (uint32, < V)
//   24      8     token count N (uint64)
//   32      8     document (story) count (uint64)
//   40      8     checksum: FNV-1a 64 over the 2N token bytes
//   48      16    reserved, zero
//   64      2N    tokens, little-endian uint16; every story is followed by EOS
//
// Thread safety: a TokenShard is immutable after Open; any number of threads
// may read it. A ShardWriter is used by one thread.
// Failure: Open names the file and the problem (bad magic, unsupported version,
// truncation or trailing bytes, checksum mismatch, token id >= vocab) and
// returns DataLossError / InvalidArgumentError / NotFoundError.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/safe_output.h"
#include "runtime/data/mapped_file.h"

namespace mla {

inline constexpr char kShardMagic[8] = {'M', 'L', 'A', 'T', 'O', 'K', 'S', '\0'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr uint32_t kShardHeaderBytes = 64;
inline constexpr uint32_t kShardMaxVocab = 65536;  // tokens are uint16

struct ShardHeader {
  uint32_t version = kShardVersion;
  uint32_t vocab_size = 0;
  uint32_t eos_id = 0;
  uint64_t token_count = 0;
  uint64_t document_count = 0;
  uint64_t checksum = 0;
};

// FNV-1a 64 over raw bytes; `state` chains calls over consecutive pieces.
inline constexpr uint64_t kFnvOffsetBasis = 14695981039346656037ull;
uint64_t Fnv1a64(const void* data, size_t size, uint64_t state = kFnvOffsetBasis);

class TokenShard {
 public:
  // Maps and validates the whole file: header fields, exact file size, the
  // checksum and that every token id is < vocab_size.
  static absl::StatusOr<TokenShard> Open(const std::string& path);

  TokenShard(TokenShard&&) = default;
  TokenShard& operator=(TokenShard&&) = default;
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;

  const ShardHeader& header() const { return header_; }
  const std::string& path() const { return file_.path(); }
  uint64_t size() const { return header_.token_count; }
  // The N tokens, mapped from the file (valid while this object lives).
  std::span<const uint16_t> tokens() const { return {tokens_, header_.token_count}; }

 private:
  TokenShard(MappedFile file, ShardHeader header, const uint16_t* tokens)
      : file_(std::move(file)), header_(header), tokens_(tokens) {}

  MappedFile file_;
  ShardHeader header_;
  const uint16_t* tokens_;
};

// Header fields only, without the checksum pass (for `mla-data inspect`, which
// reports each problem separately). Checks magic, version and exact file size.
absl::StatusOr<ShardHeader> ReadShardHeader(const std::string& path);

// Streams tokens to `path`.tmp, then Finish() writes the header, fsyncs and
// renames the file into place (base/safe_output.h's AtomicFile), so an
// interrupted write never leaves a valid-looking shard.
// Destroying an unfinished writer removes the temporary file.
class ShardWriter {
 public:
  static absl::StatusOr<std::unique_ptr<ShardWriter>> Create(const std::string& path,
                                                             uint32_t vocab_size,
                                                             uint32_t eos_id);
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Appends one document's tokens followed by EOS. Ids must be < vocab_size.
  absl::Status AppendDocument(std::span<const int> ids);
  // Appends raw tokens (already containing their EOS separators).
  absl::Status AppendTokens(std::span<const uint16_t> tokens, uint64_t documents);
  absl::Status Finish();

  const ShardHeader& header() const { return header_; }

 private:
  ShardWriter(std::string path, AtomicFile file, ShardHeader header);
  absl::Status Flush();

  std::string path_;
  AtomicFile file_;  // `path_`.tmp until Finish commits it
  bool finished_ = false;
  ShardHeader header_;
  std::vector<uint16_t> buffer_;
};

}  // namespace mla

#include "runtime/data/token_shard.h"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"
#include "base/status_macros.h"

namespace mla {

static_assert(std::endian::native == std::endian::little,
              "token shards are little-endian; this build assumes a little-endian host");

namespace {

// Header field offsets (docs/data-format.md).
constexpr size_t kOffVersion = 8, kOffHeaderBytes = 12, kOffVocab = 16, kOffEos = 20,
                 kOffCount = 24, kOffDocs = 32, kOffChecksum = 40;

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
void Store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

// Parses and checks the header against the file size.
absl::StatusOr<ShardHeader> ParseHeader(const std::string& path, const uint8_t* data,
                                        size_t file_size) {
  if (file_size < kShardHeaderBytes) {
    return absl::DataLossError(absl::StrCat(path, ": truncated token shard: ", file_size,
                                            " bytes, shorter than the ", kShardHeaderBytes,
                                            "-byte header"));
  }
  if (std::memcmp(data, kShardMagic, sizeof(kShardMagic)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a token shard (bad magic; expected \"MLATOKS\")"));
  }
  ShardHeader h;
  h.version = Load<uint32_t>(data + kOffVersion);
  if (h.version != kShardVersion) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": unsupported token shard version ",
                                                   h.version, " (this build reads version ",
                                                   kShardVersion, ")"));
  }
  uint32_t header_bytes = Load<uint32_t>(data + kOffHeaderBytes);
  if (header_bytes != kShardHeaderBytes) {
    return absl::DataLossError(absl::StrCat(path, ": corrupt header: header size ",
                                            header_bytes, ", expected ", kShardHeaderBytes));
  }
  h.vocab_size = Load<uint32_t>(data + kOffVocab);
  h.eos_id = Load<uint32_t>(data + kOffEos);
  h.token_count = Load<uint64_t>(data + kOffCount);
  h.document_count = Load<uint64_t>(data + kOffDocs);
  h.checksum = Load<uint64_t>(data + kOffChecksum);
  if (h.vocab_size == 0 || h.vocab_size > kShardMaxVocab) {
    return absl::DataLossError(absl::StrCat(path, ": corrupt header: vocab size ", h.vocab_size,
                                            " outside 1..", kShardMaxVocab));
  }
  if (h.eos_id >= h.vocab_size) {
    return absl::DataLossError(absl::StrCat(path, ": corrupt header: EOS id ", h.eos_id,
                                            " >= vocab size ", h.vocab_size));
  }
  // Compare in token units so a huge corrupt count cannot overflow.
  uint64_t payload = file_size - kShardHeaderBytes;
  if (payload % 2 != 0 || payload / 2 != h.token_count) {
    if (payload / 2 < h.token_count) {
      return absl::DataLossError(absl::StrCat(path, ": truncated token shard: header says ",
                                              h.token_count, " tokens (", 
                                              kShardHeaderBytes + 2 * h.token_count,
                                              " bytes) but the file has ", file_size, " bytes"));
    }
    return absl::DataLossError(absl::StrCat(path, ": token shard has trailing bytes: header says ",
                                            h.token_count, " tokens but the file has ",
                                            file_size, " bytes"));
  }
  return h;
}

}  // namespace

uint64_t Fnv1a64(const void* data, size_t size, uint64_t state) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) {
    state ^= p[i];
    state *= 1099511628211ull;
  }
  return state;
}

absl::StatusOr<TokenShard> TokenShard::Open(const std::string& path) {
  MLA_ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
  MLA_ASSIGN_OR_RETURN(ShardHeader h, ParseHeader(path, file.data(), file.size()));
  const uint8_t* payload = file.data() + kShardHeaderBytes;
  uint64_t sum = Fnv1a64(payload, 2 * h.token_count);
  if (sum != h.checksum) {
    return absl::DataLossError(absl::StrFormat(
        "%s: checksum mismatch: header says %016x, tokens hash to %016x (file corrupted)", path,
        h.checksum, sum));
  }
  const uint16_t* tokens = reinterpret_cast<const uint16_t*>(payload);
  for (uint64_t i = 0; i < h.token_count; ++i) {
    if (tokens[i] >= h.vocab_size) {
      return absl::DataLossError(absl::StrCat(path, ": token id ", tokens[i], " at position ", i,
                                              " is >= vocab size ", h.vocab_size));
    }
  }
  return TokenShard(std::move(file), h, tokens);
}

absl::StatusOr<ShardHeader> ReadShardHeader(const std::string& path) {
  MLA_ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
  return ParseHeader(path, file.data(), file.size());
}

absl::StatusOr<std::unique_ptr<ShardWriter>> ShardWriter::Create(const std::string& path,
                                                                 uint32_t vocab_size,
                                                                 uint32_t eos_id) {
  if (vocab_size == 0 || vocab_size > kShardMaxVocab) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": vocab size ", vocab_size, " does not fit uint16 tokens (1..", kShardMaxVocab, ")"));
  }
  if (eos_id >= vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": EOS id ", eos_id, " >= vocab size ", vocab_size));
  }
  MLA_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::Create(path));
  ShardHeader h;
  h.vocab_size = vocab_size;
  h.eos_id = eos_id;
  h.checksum = kFnvOffsetBasis;
  auto writer = std::unique_ptr<ShardWriter>(new ShardWriter(path, std::move(file), h));
  // Placeholder header; Finish() rewrites it.
  const char zeros[kShardHeaderBytes] = {};
  MLA_RETURN_IF_ERROR(writer->file_.Append(absl::string_view(zeros, sizeof(zeros))));
  return writer;
}

ShardWriter::ShardWriter(std::string path, AtomicFile file, ShardHeader header)
    : path_(std::move(path)), file_(std::move(file)), header_(header) {
  buffer_.reserve(1 << 20);
}

absl::Status ShardWriter::AppendDocument(std::span<const int> ids) {
  CHECK(!finished_) << "AppendDocument after Finish";
  for (int id : ids) {
    if (id < 0 || static_cast<uint32_t>(id) >= header_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ": token id ", id,
                                                     " outside vocab 0..", header_.vocab_size - 1));
    }
    buffer_.push_back(static_cast<uint16_t>(id));
  }
  buffer_.push_back(static_cast<uint16_t>(header_.eos_id));
  header_.token_count += ids.size() + 1;
  header_.document_count += 1;
  if (buffer_.size() >= (1u << 20)) return Flush();
  return absl::OkStatus();
}

absl::Status ShardWriter::AppendTokens(std::span<const uint16_t> tokens, uint64_t documents) {
  CHECK(!finished_) << "AppendTokens after Finish";
  for (uint16_t t : tokens) {
    if (t >= header_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ": token id ", t,
                                                     " outside vocab 0..", header_.vocab_size - 1));
    }
  }
  MLA_RETURN_IF_ERROR(Flush());
  const char* p = reinterpret_cast<const char*>(tokens.data());
  header_.checksum = Fnv1a64(p, tokens.size_bytes(), header_.checksum);
  MLA_RETURN_IF_ERROR(file_.Append(absl::string_view(p, tokens.size_bytes())));
  header_.token_count += tokens.size();
  header_.document_count += documents;
  return absl::OkStatus();
}

absl::Status ShardWriter::Flush() {
  const char* p = reinterpret_cast<const char*>(buffer_.data());
  const size_t bytes = buffer_.size() * sizeof(uint16_t);
  header_.checksum = Fnv1a64(p, bytes, header_.checksum);
  MLA_RETURN_IF_ERROR(file_.Append(absl::string_view(p, bytes)));
  buffer_.clear();
  return absl::OkStatus();
}

absl::Status ShardWriter::Finish() {
  CHECK(!finished_) << "Finish called twice";
  MLA_RETURN_IF_ERROR(Flush());
  uint8_t head[kShardHeaderBytes] = {};
  std::memcpy(head, kShardMagic, sizeof(kShardMagic));
  Store<uint32_t>(head + kOffVersion, kShardVersion);
  Store<uint32_t>(head + kOffHeaderBytes, kShardHeaderBytes);
  Store<uint32_t>(head + kOffVocab, header_.vocab_size);
  Store<uint32_t>(head + kOffEos, header_.eos_id);
  Store<uint64_t>(head + kOffCount, header_.token_count);
  Store<uint64_t>(head + kOffDocs, header_.document_count);
  Store<uint64_t>(head + kOffChecksum, header_.checksum);
  MLA_RETURN_IF_ERROR(
      file_.Overwrite(0, absl::string_view(reinterpret_cast<const char*>(head), sizeof(head))));
  MLA_RETURN_IF_ERROR(file_.Commit());
  finished_ = true;
  return absl::OkStatus();
}

}  // namespace mla

#include "checkpoint/integrity.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/safe_output.h"
#include "base/status_macros.h"
#include "checkpoint/format.h"

namespace mla::ckpt {
namespace {

constexpr int64_t kOffVersion = 8, kOffHeaderBytes = 12, kOffFileBytes = 16, kOffAlgorithm = 24,
                  kOffBlockBytes = 28, kOffDigest = 32, kOffCheck = 40;
constexpr char kHdf5Signature[] = "\x89HDF\r\n\x1a\n";
// Blocks read per pread when hashing a file: fewer system calls.
constexpr int64_t kBlocksPerRead = 8;

template <typename T>
void Store(char* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

template <typename T>
T Load(const char* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

std::string Hex(uint64_t v) { return absl::StrFormat("%016x", v); }

std::string HexBytes(absl::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes) absl::StrAppend(&out, out.empty() ? "" : " ", absl::Hex(c, absl::kZeroPad2));
  return out;
}

// pread of exactly n bytes at off, retrying short reads.
absl::Status ReadExactly(int fd, const std::string& path, char* out, int64_t n, int64_t off) {
  for (int64_t done = 0; done < n;) {
    const ssize_t r = ::pread(fd, out + done, static_cast<size_t>(n - done), static_cast<off_t>(off + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("cannot read", path);
    }
    if (r == 0)
      return absl::DataLossError(absl::StrCat("truncated while reading: ", path, " ended at byte ", off + done));
    done += r;
  }
  return absl::OkStatus();
}

}  // namespace

std::array<char, kHeaderBytes> EncodeIntegrityHeader(const IntegrityHeader& header) {
  std::array<char, kHeaderBytes> out{};
  std::memcpy(out.data(), kHeaderMagic, 8);
  Store<uint32_t>(out.data() + kOffVersion, static_cast<uint32_t>(kFormatVersion));
  Store<uint32_t>(out.data() + kOffHeaderBytes, static_cast<uint32_t>(kHeaderBytes));
  Store<uint64_t>(out.data() + kOffFileBytes, static_cast<uint64_t>(header.file_bytes));
  Store<uint32_t>(out.data() + kOffAlgorithm, kDigestXxh3Blocks);
  Store<uint32_t>(out.data() + kOffBlockBytes, static_cast<uint32_t>(kDigestBlockBytes));
  Store<uint64_t>(out.data() + kOffDigest, header.digest);
  Store<uint64_t>(out.data() + kOffCheck, XXH3_64bits(out.data(), kOffCheck));
  return out;
}

absl::StatusOr<IntegrityHeader> DecodeIntegrityHeader(absl::string_view bytes) {
  if (bytes.empty()) return absl::DataLossError("is empty (0 bytes)");
  if (bytes.substr(0, 8) == absl::string_view(kHdf5Signature, 8))
    return absl::InvalidArgumentError(absl::StrCat(
        "has no integrity header: it starts with the HDF5 signature, so it is a format version 1 "
        "checkpoint or some other HDF5 file; this build reads format version ",
        kFormatVersion, " only (docs/checkpoint-format.md)"));
  if (bytes.size() < 8 || bytes.substr(0, 8) != absl::string_view(kHeaderMagic, 8))
    return absl::DataLossError(absl::StrCat(
        "not an mlatrain checkpoint, or its header is damaged: it starts with [", HexBytes(bytes.substr(0, 8)),
        "], not the magic [", HexBytes(absl::string_view(kHeaderMagic, 8)), "]"));
  if (static_cast<int64_t>(bytes.size()) < kHeaderBytes)
    return absl::DataLossError(absl::StrCat("truncated: the file has ", bytes.size(), " bytes, less than the ",
                                            kHeaderBytes, "-byte header"));
  const char* p = bytes.data();
  const uint64_t check = XXH3_64bits(p, kOffCheck), stored_check = Load<uint64_t>(p + kOffCheck);
  if (check != stored_check)
    return absl::DataLossError(absl::StrCat("header is damaged: its check says ", Hex(stored_check),
                                            ", its bytes [0, ", kOffCheck, ") hash to ", Hex(check)));
  const uint32_t version = Load<uint32_t>(p + kOffVersion);
  if (version != kFormatVersion)
    return absl::FailedPreconditionError(absl::StrCat("unknown format version ", version,
                                                      " (this build reads version ", kFormatVersion, ")"));
  const uint32_t header_bytes = Load<uint32_t>(p + kOffHeaderBytes);
  const uint32_t algorithm = Load<uint32_t>(p + kOffAlgorithm);
  const uint32_t block_bytes = Load<uint32_t>(p + kOffBlockBytes);
  if (header_bytes != kHeaderBytes || algorithm != kDigestXxh3Blocks || block_bytes != kDigestBlockBytes)
    return absl::DataLossError(absl::StrCat(
        "header fields header_bytes=", header_bytes, " digest_algorithm=", algorithm, " digest_block_bytes=",
        block_bytes, " are not those of format version ", kFormatVersion, " (", kHeaderBytes, ", ",
        kDigestXxh3Blocks, ", ", kDigestBlockBytes, ")"));
  for (int64_t i = kHeaderFieldBytes; i < kHeaderBytes; ++i)
    if (p[i] != 0)
      return absl::DataLossError(absl::StrCat("header is damaged: byte ", i, " is ",
                                              absl::Hex(static_cast<unsigned char>(p[i]), absl::kZeroPad2),
                                              " where the format has zero"));
  IntegrityHeader h;
  const uint64_t file_bytes = Load<uint64_t>(p + kOffFileBytes);
  if (file_bytes < static_cast<uint64_t>(kHeaderBytes) || file_bytes > static_cast<uint64_t>(INT64_MAX))
    return absl::DataLossError(absl::StrCat("header says the file has ", file_bytes,
                                            " bytes, which cannot hold the header"));
  h.file_bytes = static_cast<int64_t>(file_bytes);
  h.digest = Load<uint64_t>(p + kOffDigest);
  return h;
}

int64_t DigestBlockCount(int64_t file_bytes) {
  return (std::max<int64_t>(file_bytes - kHeaderBytes, 0) + kDigestBlockBytes - 1) / kDigestBlockBytes;
}

uint64_t BlockHash(absl::string_view block) { return XXH3_64bits(block.data(), block.size()); }

uint64_t CombineBlockHashes(absl::Span<const uint64_t> block_hashes) {
  std::vector<XXH64_canonical_t> canonical(block_hashes.size());
  for (size_t i = 0; i < block_hashes.size(); ++i) XXH64_canonicalFromHash(&canonical[i], block_hashes[i]);
  return XXH3_64bits(canonical.data(), canonical.size() * sizeof(XXH64_canonical_t));
}

uint64_t DigestOfImage(absl::string_view file) {
  std::vector<uint64_t> hashes;
  for (int64_t lo = kHeaderBytes; lo < static_cast<int64_t>(file.size()); lo += kDigestBlockBytes)
    hashes.push_back(BlockHash(file.substr(static_cast<size_t>(lo), static_cast<size_t>(kDigestBlockBytes))));
  return CombineBlockHashes(hashes);
}

absl::StatusOr<std::vector<uint64_t>> HashFileBlocks(const std::string& path, int64_t file_bytes, int64_t first,
                                                     int64_t last) {
  std::vector<uint64_t> hashes;
  if (last <= first) return hashes;
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError("cannot open", path);
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  std::vector<char> buf(static_cast<size_t>(
      std::min(kBlocksPerRead, last - first) * kDigestBlockBytes));
  hashes.reserve(static_cast<size_t>(last - first));
  for (int64_t b = first; b < last; b += kBlocksPerRead) {
    const int64_t lo = kHeaderBytes + b * kDigestBlockBytes;
    const int64_t hi = std::min(file_bytes, kHeaderBytes + std::min(last, b + kBlocksPerRead) * kDigestBlockBytes);
    MLA_RETURN_IF_ERROR(ReadExactly(fd.get(), path, buf.data(), hi - lo, lo));
    for (int64_t at = 0; at < hi - lo; at += kDigestBlockBytes)
      hashes.push_back(BlockHash(absl::string_view(buf.data() + at,
                                                   static_cast<size_t>(std::min(kDigestBlockBytes, hi - lo - at)))));
  }
  return hashes;
}

absl::Status WriteIntegrityHeader(const std::string& path, const IntegrityHeader& header) {
  const std::array<char, kHeaderBytes> bytes = EncodeIntegrityHeader(header);
  Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError("cannot open for writing the header", path);
  for (int64_t done = 0; done < kHeaderBytes;) {
    const ssize_t w = ::pwrite(fd.get(), bytes.data() + done, static_cast<size_t>(kHeaderBytes - done), done);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("header write failed on", path);
    }
    done += w;
  }
  if (::close(fd.release()) != 0) return ErrnoError("close failed on", path);
  return absl::OkStatus();
}

absl::StatusOr<IntegrityHeader> CheckFileIntegrity(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError("cannot open", path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("cannot stat", path);
  if (!S_ISREG(st.st_mode)) return absl::InvalidArgumentError("is not a regular file");
  const int64_t size = st.st_size;
  std::string head(static_cast<size_t>(std::min(size, kHeaderBytes)), '\0');
  MLA_RETURN_IF_ERROR(ReadExactly(fd.get(), path, head.data(), static_cast<int64_t>(head.size()), 0));
  MLA_ASSIGN_OR_RETURN(const IntegrityHeader h, DecodeIntegrityHeader(head));
  if (size < h.file_bytes)
    return absl::DataLossError(
        absl::StrCat("truncated: the header says ", h.file_bytes, " bytes, the file has ", size));
  if (size > h.file_bytes)
    return absl::DataLossError(absl::StrCat("damaged: ", size - h.file_bytes,
                                            " unexpected byte(s) after the end (the header says ", h.file_bytes,
                                            " bytes, the file has ", size, ")"));
  MLA_ASSIGN_OR_RETURN(std::vector<uint64_t> hashes,
                       HashFileBlocks(path, h.file_bytes, 0, DigestBlockCount(h.file_bytes)));
  const uint64_t digest = CombineBlockHashes(hashes);
  if (digest != h.digest)
    return absl::DataLossError(absl::StrCat("damaged: digest mismatch (the header says ", Hex(h.digest),
                                            ", bytes [", kHeaderBytes, ", ", h.file_bytes, ") hash to ",
                                            Hex(digest), ")"));
  return h;
}

absl::Status SealCheckpointFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoError("cannot stat", path);
  IntegrityHeader h;
  h.file_bytes = st.st_size;
  if (h.file_bytes < kHeaderBytes)
    return absl::InvalidArgumentError(absl::StrCat(path, " is shorter than the ", kHeaderBytes, "-byte header"));
  MLA_ASSIGN_OR_RETURN(std::vector<uint64_t> hashes,
                       HashFileBlocks(path, h.file_bytes, 0, DigestBlockCount(h.file_bytes)));
  h.digest = CombineBlockHashes(hashes);
  return WriteIntegrityHeader(path, h);
}

}  // namespace mla::ckpt

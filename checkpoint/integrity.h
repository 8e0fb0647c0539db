#pragma once
// The integrity header of checkpoint format version 2
// (docs/checkpoint-format.md, "Integrity header"): the first kHeaderBytes of
// every ckpt-<step>.h5 are an HDF5 userblock holding the file's size and a
// digest of every byte after the header. A reader checks both with plain file
// I/O before HDF5 parses a single byte of the file, so damaged bytes anywhere
// (HDF5 metadata included, whose parsers in HDF5 1.10 can crash on them) give
// an error instead of reaching HDF5.
//
// Digest (algorithm 1): the bytes [kHeaderBytes, file_bytes) are cut into
// blocks of kDigestBlockBytes (the last may be shorter; none when the region
// is empty); each block's XXH3-64 (seed 0) is written in xxHash's canonical
// form (8 bytes, big-endian) and the digest is the XXH3-64 of those digests
// concatenated. Blocks are independent, so ranks hash disjoint block ranges
// in parallel and one rank combines.
//
// Header layout (integers little-endian):
//   [0, 8)    magic "\x89MLACKPT"
//   [8, 12)   format_version (u32) = kFormatVersion
//   [12, 16)  header_bytes (u32) = kHeaderBytes, where HDF5's superblock is
//   [16, 24)  file_bytes (u64): size of the whole file, header included
//   [24, 28)  digest_algorithm (u32) = kDigestXxh3Blocks
//   [28, 32)  digest_block_bytes (u32) = kDigestBlockBytes
//   [32, 40)  digest (u64)
//   [40, 48)  header_check (u64): XXH3-64 of bytes [0, 40)
//   [48, kHeaderBytes) zero
// Every byte of a file is covered: the header by header_check and the zero
// rule, the rest by the digest.
//
// Functions are thread-compatible (no shared state); the file functions name
// the path and the errno text on I/O failure. Messages of the check functions
// do not repeat the path; callers prefix it.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace mla::ckpt {

inline constexpr int64_t kHeaderBytes = 4096;  // HDF5 userblock: a power of two >= 512
inline constexpr char kHeaderMagic[] = "\x89MLACKPT";  // 8 bytes, no NUL stored
inline constexpr int64_t kHeaderFieldBytes = 48;       // magic .. header_check
inline constexpr uint32_t kDigestXxh3Blocks = 1;
inline constexpr int64_t kDigestBlockBytes = int64_t{1} << 20;

struct IntegrityHeader {
  int64_t file_bytes = 0;
  uint64_t digest = 0;
};

// The kHeaderBytes to write at offset 0 of a file of `file_bytes` bytes
// whose digest is `digest`.
std::array<char, kHeaderBytes> EncodeIntegrityHeader(const IntegrityHeader& header);

// Parses and checks a header read from the start of a file (all of `bytes`
// when the file is shorter than kHeaderBytes): magic, header_check, version,
// the fixed fields and the zero area. Distinguishes a file without a header
// (an HDF5 signature at offset 0: format version 1 or another HDF5 file,
// InvalidArgument) from a damaged one (DataLoss) and an unknown version
// (FailedPrecondition).
absl::StatusOr<IntegrityHeader> DecodeIntegrityHeader(absl::string_view bytes);

// Number of digest blocks of a file of `file_bytes` bytes (>= kHeaderBytes).
int64_t DigestBlockCount(int64_t file_bytes);

// XXH3-64 of one block, and the digest of the blocks' XXH3-64 values in
// order (what algorithm 1 stores).
uint64_t BlockHash(absl::string_view block);
uint64_t CombineBlockHashes(absl::Span<const uint64_t> block_hashes);

// The digest of `file` (a whole file image, header included, at least
// kHeaderBytes long), computed in memory.
uint64_t DigestOfImage(absl::string_view file);

// Reads blocks [first, last) of the digested region of the file at `path`,
// whose size is `file_bytes`, and returns their hashes.
absl::StatusOr<std::vector<uint64_t>> HashFileBlocks(const std::string& path, int64_t file_bytes,
                                                     int64_t first, int64_t last);

// Writes the header at offset 0 of `path` (no fsync; the caller syncs).
absl::Status WriteIntegrityHeader(const std::string& path, const IntegrityHeader& header);

// The reader's check, before any HDF5 call: the header, the file's size
// against it, and the digest of every byte after it. Returns the header, or
// the problem (e.g. "damaged: digest mismatch (...)", "truncated: the header
// says N bytes, the file has M").
absl::StatusOr<IntegrityHeader> CheckFileIntegrity(const std::string& path);

// Computes the digest of the file at `path` as it is now and writes a header
// for it: for tests and tools that rewrite a checkpoint with HDF5 on purpose
// (the writer seals its files itself, in parallel). Never use it to make a
// damaged file pass.
absl::Status SealCheckpointFile(const std::string& path);

}  // namespace mla::ckpt

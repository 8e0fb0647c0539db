// The integrity header (checkpoint/integrity.h): one byte changed anywhere in
// a written checkpoint — the header, HDF5's metadata, tensor data — a
// truncated file, an appended byte, a file without a header (format version
// 1) or an empty one is refused by CheckFileIntegrity, CheckpointReader::Open
// and VerifyCheckpoint with a message naming the file and the problem, before
// HDF5 sees the file: the status is the integrity check's, not HDF5's.
// Damaged places are found by searching the file for bytes the test wrote
// (tensor values, a link name), not through HDF5's addresses.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "checkpoint/integrity.h"
#include "checkpoint/reader.h"
#include "checkpoint/writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/checkpoint/test_state.h"

namespace mla::ckpt {
namespace {

using ::testing::HasSubstr;
using testing::Buffers;
using testing::SmallLayout;
using testing::Total;

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

class IntegrityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::SharedTempDir(MPI_COMM_SELF);
    absl::StatusOr<std::string> saved = testing::SaveWholeSmall(dir_, buffers_, 40);
    ASSERT_TRUE(saved.ok()) << saved.status();
    path_ = *saved;
    original_ = ReadAll(path_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Offset of the first occurrence of `needle` in the written file.
  size_t Find(absl::string_view needle) const {
    const size_t at = absl::string_view(original_).find(needle);
    EXPECT_NE(at, absl::string_view::npos) << "pattern not found in the file";
    return at;
  }

  void FlipByte(size_t at) {
    std::string bytes = original_;
    ASSERT_LT(at, bytes.size());
    bytes[at] = static_cast<char>(bytes[at] ^ 0x20);
    WriteAll(path_, bytes);
  }

  // Open, VerifyCheckpoint and CheckFileIntegrity all refuse the file with
  // `code`; the reader's messages name the file and `problem`.
  void ExpectRefused(absl::StatusCode code, absl::string_view problem) {
    absl::StatusOr<IntegrityHeader> checked = CheckFileIntegrity(path_);
    ASSERT_FALSE(checked.ok());
    EXPECT_EQ(checked.status().code(), code) << checked.status();
    EXPECT_THAT(std::string(checked.status().message()), HasSubstr(std::string(problem)));
    absl::StatusOr<CheckpointReader> r = CheckpointReader::Open(path_);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), code);
    EXPECT_EQ(r.status().message(), absl::StrCat("checkpoint ", path_, ": ", checked.status().message()));
    absl::Status verified = VerifyCheckpoint(path_, SmallLayout());
    EXPECT_EQ(verified, r.status());
  }

  Buffers buffers_{Total(SmallLayout())};
  std::string dir_, path_, original_;
};

TEST_F(IntegrityTest, AWrittenFileCarriesAMatchingHeader) {
  absl::StatusOr<IntegrityHeader> h = CheckFileIntegrity(path_);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->file_bytes, static_cast<int64_t>(original_.size()));
  EXPECT_EQ(h->digest, DigestOfImage(original_));
  EXPECT_EQ(original_.substr(0, 8), std::string("\x89MLACKPT"));
  // HDF5's superblock follows the header (the userblock).
  EXPECT_EQ(original_.substr(kHeaderBytes, 8), std::string("\x89HDF\r\n\x1a\n"));
  absl::StatusOr<CheckpointReader> r = CheckpointReader::Open(path_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->integrity().digest, h->digest);
}

TEST_F(IntegrityTest, FlippedByteInTheHeaderFieldsIsDetected) {
  FlipByte(20);  // inside file_bytes
  ExpectRefused(absl::StatusCode::kDataLoss, "header is damaged");
}

TEST_F(IntegrityTest, FlippedByteInTheStoredDigestIsDetected) {
  FlipByte(33);
  ExpectRefused(absl::StatusCode::kDataLoss, "header is damaged");
}

TEST_F(IntegrityTest, FlippedByteInTheHeadersZeroAreaIsDetected) {
  FlipByte(1000);
  ExpectRefused(absl::StatusCode::kDataLoss, "byte 1000 is 20 where the format has zero");
}

TEST_F(IntegrityTest, FlippedByteInTheMagicIsNotTakenForACheckpoint) {
  FlipByte(3);
  ExpectRefused(absl::StatusCode::kDataLoss, "not an mlatrain checkpoint, or its header is damaged");
}

TEST_F(IntegrityTest, FlippedByteInHdf5sSuperblockIsADigestMismatch) {
  FlipByte(kHeaderBytes + 9);
  ExpectRefused(absl::StatusCode::kDataLoss, "damaged: digest mismatch");
}

TEST_F(IntegrityTest, FlippedByteInALinkNameIsADigestMismatch) {
  FlipByte(Find("blocks.0.mlp.w_fc") + 3);
  ExpectRefused(absl::StatusCode::kDataLoss, "damaged: digest mismatch");
}

TEST_F(IntegrityTest, FlippedByteInTensorDataIsADigestMismatch) {
  const TensorSpec w_fc = SmallLayout()[4];
  std::string values(16 * sizeof(float), '\0');
  std::memcpy(values.data(), buffers_.v.data() + w_fc.offset + 100, values.size());
  FlipByte(Find(values) + 6);
  ExpectRefused(absl::StatusCode::kDataLoss, "damaged: digest mismatch");
}

TEST_F(IntegrityTest, TheDigestMismatchNamesStoredAndComputedDigests) {
  FlipByte(original_.size() - 1);
  std::string bytes = ReadAll(path_);
  absl::StatusOr<IntegrityHeader> h = DecodeIntegrityHeader(absl::string_view(bytes).substr(0, kHeaderBytes));
  ASSERT_TRUE(h.ok()) << h.status();
  absl::StatusOr<IntegrityHeader> checked = CheckFileIntegrity(path_);
  ASSERT_FALSE(checked.ok());
  EXPECT_THAT(std::string(checked.status().message()),
              HasSubstr(absl::StrFormat("the header says %016x, bytes [4096, %d) hash to %016x", h->digest,
                                        bytes.size(), DigestOfImage(bytes))));
}

TEST_F(IntegrityTest, TruncatedFileIsNamedWithBothSizes) {
  std::filesystem::resize_file(path_, original_.size() - 1000);
  ExpectRefused(absl::StatusCode::kDataLoss, absl::StrCat("truncated: the header says ", original_.size(),
                                                          " bytes, the file has ", original_.size() - 1000));
}

TEST_F(IntegrityTest, FileCutInsideTheHeaderIsTruncated) {
  std::filesystem::resize_file(path_, 100);
  ExpectRefused(absl::StatusCode::kDataLoss, "truncated: the file has 100 bytes, less than the 4096-byte header");
}

TEST_F(IntegrityTest, AppendedByteIsDetected) {
  WriteAll(path_, original_ + "x");
  ExpectRefused(absl::StatusCode::kDataLoss, "1 unexpected byte(s) after the end");
}

TEST_F(IntegrityTest, EmptyFileIsRefused) {
  WriteAll(path_, "");
  ExpectRefused(absl::StatusCode::kDataLoss, "is empty");
}

TEST_F(IntegrityTest, FormatVersion1FileWithoutHeaderIsRefusedAsSuch) {
  // What a version 1 writer produced: HDF5 from byte 0, no userblock.
  WriteAll(path_, original_.substr(kHeaderBytes));
  ExpectRefused(absl::StatusCode::kInvalidArgument,
                "has no integrity header: it starts with the HDF5 signature, so it is a format version 1 "
                "checkpoint or some other HDF5 file; this build reads format version 2 only");
}

TEST_F(IntegrityTest, UnknownHeaderVersionIsRefused) {
  std::string bytes = original_;
  bytes[8] = 7;  // format_version = 7, with a header check that matches
  const uint64_t check = BlockHash(absl::string_view(bytes).substr(0, 40));
  for (int i = 0; i < 8; ++i) bytes[40 + i] = static_cast<char>((check >> (8 * i)) & 0xff);
  WriteAll(path_, bytes);
  ExpectRefused(absl::StatusCode::kFailedPrecondition, "unknown format version 7 (this build reads version 2)");
}

TEST_F(IntegrityTest, SealingAfterADeliberateRewriteMakesTheFileReadableAgain) {
  FlipByte(original_.size() - 1);
  ASSERT_FALSE(CheckFileIntegrity(path_).ok());
  ASSERT_TRUE(SealCheckpointFile(path_).ok());
  EXPECT_TRUE(CheckFileIntegrity(path_).ok());
}

TEST(IntegrityDigest, BlocksAreCutAtOneMebibyteAfterTheHeader) {
  EXPECT_EQ(DigestBlockCount(kHeaderBytes), 0);
  EXPECT_EQ(DigestBlockCount(kHeaderBytes + 1), 1);
  EXPECT_EQ(DigestBlockCount(kHeaderBytes + kDigestBlockBytes), 1);
  EXPECT_EQ(DigestBlockCount(kHeaderBytes + kDigestBlockBytes + 1), 2);
  // A 2.5-block image: the digest is the hash of the three block hashes.
  std::string image(static_cast<size_t>(kHeaderBytes + 5 * kDigestBlockBytes / 2), '\0');
  for (size_t i = 0; i < image.size(); ++i) image[i] = static_cast<char>(i * 2654435761u >> 24);
  const absl::string_view body = absl::string_view(image).substr(kHeaderBytes);
  const uint64_t blocks[3] = {BlockHash(body.substr(0, kDigestBlockBytes)),
                              BlockHash(body.substr(kDigestBlockBytes, kDigestBlockBytes)),
                              BlockHash(body.substr(2 * kDigestBlockBytes))};
  EXPECT_EQ(DigestOfImage(image), CombineBlockHashes(blocks));
  // Changing the header does not change the digest; changing the body does.
  std::string other = image;
  other[10] ^= 1;
  EXPECT_EQ(DigestOfImage(other), DigestOfImage(image));
  other[kHeaderBytes + kDigestBlockBytes + 7] ^= 1;
  EXPECT_NE(DigestOfImage(other), DigestOfImage(image));
}

}  // namespace
}  // namespace mla::ckpt

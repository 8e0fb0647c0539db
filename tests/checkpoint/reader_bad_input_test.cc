// Inconsistent checkpoints give a non-OK status whose message names the file
// and the problem, never a crash or an absurd allocation: a missing dataset,
// an unknown format version, shapes that do not match the expected layout,
// absurd sizes, and non-finite values (counted). The files are rewritten with
// HDF5 and then sealed again (SealCheckpointFile), so these reach the schema
// checks behind the integrity header; damage the header catches is
// integrity_test.cc's.
#include <hdf5.h>

#include <cmath>
#include <filesystem>
#include <limits>

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

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    dir_ = testing::SharedTempDir(MPI_COMM_SELF);
    Save(buffers_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void Save(const Buffers& b) {
    absl::StatusOr<std::string> saved = testing::SaveWholeSmall(dir_, b, 1);
    ASSERT_TRUE(saved.ok()) << saved.status();
    path_ = *saved;
  }

  // Opens the file read-write with plain serial HDF5 to damage it; Close()
  // closes it and seals the result.
  hid_t OpenRw() {
    hid_t f = H5Fopen(path_.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    EXPECT_GE(f, 0);
    return f;
  }
  void Close(hid_t f) {
    ASSERT_GE(H5Fclose(f), 0);
    ASSERT_TRUE(SealCheckpointFile(path_).ok());
  }

  // Verify fails, mentioning the file and `problem`.
  void ExpectVerifyFails(absl::string_view problem, absl::Span<const TensorSpec> expected = {}) {
    absl::Status st = VerifyCheckpoint(path_, expected);
    ASSERT_FALSE(st.ok());
    EXPECT_THAT(std::string(st.message()), HasSubstr(path_));
    EXPECT_THAT(std::string(st.message()), HasSubstr(std::string(problem)));
  }

  Buffers buffers_{Total(SmallLayout())};
  std::string dir_, path_;
};

TEST_F(BadInputTest, IntactCheckpointVerifies) {
  VerifyReport report;
  EXPECT_TRUE(VerifyCheckpoint(path_, SmallLayout(), &report).ok());
  EXPECT_EQ(report.tensors_read, 3 * static_cast<int64_t>(SmallLayout().size()));
  EXPECT_EQ(report.nonfinite, 0);
}

TEST_F(BadInputTest, ARewriteThatIsNotSealedIsRefusedByTheDigest) {
  hid_t f = OpenRw();
  ASSERT_GE(H5Ldelete(f, "/optim/adamw/v/ln_f.bias", H5P_DEFAULT), 0);
  ASSERT_GE(H5Fclose(f), 0);
  ExpectVerifyFails("damaged: digest mismatch");
}

TEST_F(BadInputTest, MissingDatasetIsNamed) {
  hid_t f = OpenRw();
  ASSERT_GE(H5Ldelete(f, "/optim/adamw/v/ln_f.bias", H5P_DEFAULT), 0);
  Close(f);
  ExpectVerifyFails("/optim/adamw/v/ln_f.bias is missing");
}

TEST_F(BadInputTest, UnknownFormatVersionIsRefused) {
  hid_t f = OpenRw();
  hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
  const int64_t v = 99;
  ASSERT_GE(H5Awrite(a, H5T_NATIVE_INT64, &v), 0);
  H5Aclose(a);
  Close(f);
  ExpectVerifyFails("unknown format version 99");
}

TEST_F(BadInputTest, ShapesThatDoNotMatchTheConfigAreNamed) {
  std::vector<TensorSpec> expected = SmallLayout();
  expected[2].shape = {24, 12};  // the config's w_dkv transposed
  ExpectVerifyFails("blocks.0.attn.w_dkv has shape [12, 24] but the config gives [24, 12]", expected);
}

TEST_F(BadInputTest, AbsurdDatasetSizeIsRefusedBeforeAllocating) {
  // A tokenizer claiming 2^40 bytes: legal HDF5 (unwritten chunks cost
  // nothing), but reading it would allocate a terabyte.
  hid_t f = OpenRw();
  ASSERT_GE(H5Ldelete(f, "/tokenizer/model", H5P_DEFAULT), 0);
  const hsize_t dims = hsize_t{1} << 40, chunk = 1 << 20;
  hid_t space = H5Screate_simple(1, &dims, nullptr);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, 1, &chunk);
  hid_t d = H5Dcreate2(f, "/tokenizer/model", H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  ASSERT_GE(d, 0);
  H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(space);
  Close(f);
  ExpectVerifyFails("/tokenizer/model has an absurd shape [1099511627776]");
}

TEST_F(BadInputTest, AbsurdAttributeValueIsRefused) {
  hid_t f = OpenRw();
  hid_t a = H5Aopen(f, "world_size", H5P_DEFAULT);
  const int64_t v = int64_t{1} << 40;
  ASSERT_GE(H5Awrite(a, H5T_NATIVE_INT64, &v), 0);
  H5Aclose(a);
  Close(f);
  ExpectVerifyFails("'world_size' = 1099511627776 is outside");
}

TEST_F(BadInputTest, NonFiniteValuesAreCountedAndFailVerification) {
  Buffers b(Total(SmallLayout()));
  b.params[5] = std::numeric_limits<float>::quiet_NaN();
  b.v[900] = std::numeric_limits<float>::infinity();
  b.v[901] = -std::numeric_limits<float>::infinity();
  std::filesystem::remove(path_);
  Save(b);
  VerifyReport report;
  absl::Status st = VerifyCheckpoint(path_, SmallLayout(), &report);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(std::string(st.message()), HasSubstr("3 non-finite values"));
  EXPECT_EQ(report.nonfinite, 3);
  ASSERT_EQ(report.with_nonfinite.size(), 2u);
  EXPECT_EQ(report.with_nonfinite[0].group_and_name, "/model/wte.weight");
  EXPECT_EQ(report.with_nonfinite[1].group_and_name, "/optim/adamw/v/blocks.0.ln1.weight");
}

TEST_F(BadInputTest, ASealedHdf5FileThatIsNotACheckpointIsRefused) {
  const std::string other = dir_ + "/other.h5";
  hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
  H5Pset_userblock(fcpl, kHeaderBytes);
  hid_t f = H5Fcreate(other.c_str(), H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
  H5Pclose(fcpl);
  H5Fclose(f);
  ASSERT_TRUE(SealCheckpointFile(other).ok());
  absl::StatusOr<CheckpointReader> r = CheckpointReader::Open(other);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(other));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("not an mlatrain checkpoint"));
}

}  // namespace
}  // namespace mla::ckpt

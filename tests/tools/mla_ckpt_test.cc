// mla-ckpt on a checkpoint of a real model config: verify passes on an intact
// file and exits non-zero on each kind of damage; stats, diff and the
// safetensors export (read back by a reader written from the spec) give the
// values the test wrote.
#include <fcntl.h>
#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_split.h"
#include "checkpoint/integrity.h"
#include "checkpoint/writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/model_checkpoint.h"
#include "runtime/model_config.h"
#include "runtime/parameter_layout.h"
#include "tests/checkpoint/test_state.h"
#include "tests/runtime/model_test_util.h"

namespace mla::ckpt {
namespace {

using ::testing::HasSubstr;

ModelConfig SmallModel() {
  return mla::testing::MakeConfig(AttentionKind::kMlaRope,
                                  {.vocab_size = 64, .context_length = 16, .n_layer = 2,
                                   .d_model = 32, .n_head = 4, .kv_rank = 16, .rope_dim = 4});
}

std::vector<ConfigEntry> ConfigEntries(const ModelConfig& c) {
  return {{"vocab_size", int64_t{c.vocab_size}},   {"context_length", int64_t{c.context_length}},
          {"n_layer", int64_t{c.n_layer}},         {"d_model", int64_t{c.d_model}},
          {"n_head", int64_t{c.n_head}},           {"attention", std::string(AttentionKindName(c.attention))},
          {"kv_rank", int64_t{c.kv_rank}},         {"rope_dim", int64_t{c.rope_dim}},
          {"q_rank", int64_t{c.q_rank}},           {"latent_norm", c.latent_norm},
          {"mlp_ratio", int64_t{c.mlp_ratio}},     {"tied_embeddings", c.tied_embeddings},
          {"rope_theta", double{c.rope_theta}},    {"lr", 6e-4}};
}

struct Output {
  int code = -1;
  std::string text;
};

class ToolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    dir_ = testing::SharedTempDir(MPI_COMM_SELF);
    for (const TensorSpec& t : TensorSpecs(BuildParameterLayout(SmallModel()))) layout_.push_back(t);
    path_ = Save(dir_ + "/a", testing::Buffers(testing::Total(layout_)));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Save(const std::string& dir, const testing::Buffers& b) {
    CheckpointState s = testing::MakeState(layout_, 50);
    s.config = ConfigEntries(SmallModel());
    const int64_t total = testing::Total(layout_);
    testing::SetSlices(s, b, {0, total}, {0, total});
    absl::StatusOr<std::string> saved = testing::SaveInto(MPI_COMM_SELF, s, dir);
    EXPECT_TRUE(saved.ok()) << saved.status();
    return saved.ok() ? *saved : "";
  }

  Output Run(const std::string& args) {
    const std::string log = dir_ + "/tool.out";
    const std::string cmd = std::string(MLA_CKPT_TOOL) + " " + args + " > " + log + " 2>&1";
    Output out;
    const int status = std::system(cmd.c_str());
    out.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::stringstream ss;
    ss << std::ifstream(log).rdbuf();
    out.text = ss.str();
    return out;
  }

  void SetIntAttr(const char* object, const char* name, int64_t value) {
    hid_t f = H5Fopen(path_.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    hid_t o = H5Oopen(f, object, H5P_DEFAULT);
    hid_t a = H5Aopen(o, name, H5P_DEFAULT);
    EXPECT_GE(a, 0);
    EXPECT_GE(H5Awrite(a, H5T_NATIVE_INT64, &value), 0);
    H5Aclose(a);
    H5Oclose(o);
    H5Fclose(f);
    ASSERT_TRUE(SealCheckpointFile(path_).ok());  // a deliberate rewrite, sealed again
  }

  void ExpectVerifyFails(absl::string_view problem) {
    Output out = Run("verify " + path_);
    EXPECT_NE(out.code, 0) << out.text;
    EXPECT_THAT(out.text, HasSubstr(path_));
    EXPECT_THAT(out.text, HasSubstr(std::string(problem)));
  }

  std::vector<TensorSpec> layout_;
  std::string dir_, path_;
};

TEST_F(ToolTest, VerifyPassesOnAnIntactCheckpoint) {
  Output out = Run("verify " + path_);
  EXPECT_EQ(out.code, 0) << out.text;
  EXPECT_THAT(out.text, HasSubstr("OK"));
}

TEST_F(ToolTest, VerifyResolvesARunDirectoryThroughLatest) {
  Output out = Run("verify " + dir_ + "/a");
  EXPECT_EQ(out.code, 0) << out.text;
  EXPECT_THAT(out.text, HasSubstr(path_));
}

TEST_F(ToolTest, VerifyFailsWhenTheStoredConfigGivesOtherShapes) {
  SetIntAttr("/config", "kv_rank", 8);
  ExpectVerifyFails("blocks.0.attn.w_dkv has shape [16, 32] but the config gives [8, 32]");
}

TEST_F(ToolTest, VerifyFailsOnATruncatedFile) {
  const auto size = std::filesystem::file_size(path_);
  std::filesystem::resize_file(path_, size * 2 / 3);
  ExpectVerifyFails(absl::StrCat("truncated: the header says ", size, " bytes, the file has ", size * 2 / 3));
}

TEST_F(ToolTest, VerifyFailsOnUnknownFormatVersion) {
  SetIntAttr("/", "format_version", 3);
  ExpectVerifyFails("unknown format version 3");
}

TEST_F(ToolTest, VerifyFailsOnAMissingDataset) {
  hid_t f = H5Fopen(path_.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(H5Ldelete(f, "/model/blocks.1.attn.w_kr", H5P_DEFAULT), 0);
  H5Fclose(f);
  ASSERT_TRUE(SealCheckpointFile(path_).ok());
  ExpectVerifyFails("/model is missing a tensor: elements [17920, 18048) between blocks.1.attn.w_uv and blocks.1.attn.w_o");
}

TEST_F(ToolTest, VerifyFailsOnAFlippedByteInTensorData) {
  // wte.weight's first values, as written, located in the file by content.
  std::string values(16 * sizeof(float), '\0');
  const testing::Buffers b(testing::Total(layout_));
  std::memcpy(values.data(), b.params.data(), values.size());
  std::stringstream ss;
  ss << std::ifstream(path_, std::ios::binary).rdbuf();
  const size_t at = ss.str().find(values);
  ASSERT_NE(at, std::string::npos);
  const int fd = open(path_.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  const unsigned char junk = 0xA5;
  ASSERT_EQ(pwrite(fd, &junk, 1, static_cast<off_t>(at + 10)), 1);
  close(fd);
  ExpectVerifyFails("damaged: digest mismatch");
}

TEST_F(ToolTest, VerifyFailsOnAFileWithoutIntegrityHeader) {
  std::stringstream ss;
  ss << std::ifstream(path_, std::ios::binary).rdbuf();
  std::ofstream(path_, std::ios::binary | std::ios::trunc) << ss.str().substr(kHeaderBytes);
  ExpectVerifyFails("has no integrity header");
}

TEST_F(ToolTest, StatsReportsTheMinAndMaxOfTheWrittenValues) {
  Output out = Run("stats " + path_);
  ASSERT_EQ(out.code, 0) << out.text;
  // wte.weight holds ParamAt(0 .. 64*32-1): (i % 4096)/64 - 32 over i < 2048.
  bool found = false;
  for (absl::string_view line : absl::StrSplit(out.text, '\n')) {
    std::vector<std::string> cols = absl::StrSplit(line, '\t');
    if (cols.size() != 7 || cols[0] != "wte.weight") continue;
    found = true;
    EXPECT_EQ(cols[1], "2048");
    EXPECT_EQ(std::stod(cols[4]), testing::ParamAt(0));
    EXPECT_EQ(std::stod(cols[5]), testing::ParamAt(2047));
    EXPECT_EQ(cols[6], "0");
  }
  EXPECT_TRUE(found) << out.text;
}

TEST_F(ToolTest, DiffOfACheckpointWithItselfFindsNothing) {
  Output out = Run("diff " + path_ + " " + path_);
  EXPECT_EQ(out.code, 0) << out.text;
  EXPECT_THAT(out.text, HasSubstr("identical"));
}

TEST_F(ToolTest, DiffReportsTheChangedTensorAndItsMaxAbsDifference) {
  testing::Buffers b(testing::Total(layout_));
  const int64_t at = layout_[3].offset + 5;  // inside the fourth tensor
  b.m[at] += 0.5f;
  const std::string other = Save(dir_ + "/b", b);
  Output out = Run("diff " + path_ + " " + other);
  EXPECT_EQ(out.code, 1) << out.text;
  EXPECT_THAT(out.text, HasSubstr(layout_[3].name + "\t/optim/adamw/m\t0.5\t"));
  EXPECT_THAT(out.text, HasSubstr(layout_[3].name + "\t/model\t0\t0"));
}

TEST_F(ToolTest, SafetensorsExportReadsBackWithAReaderWrittenFromTheSpec) {
  const std::string st = dir_ + "/model.safetensors";
  Output out = Run("export --format=safetensors --out=" + st + " " + path_);
  ASSERT_EQ(out.code, 0) << out.text;
  const char* python = std::getenv("MLA_PYTHON");
  const char* source = std::getenv("MLA_SOURCE_DIR");
  ASSERT_NE(python, nullptr) << "run through ctest";
  ASSERT_NE(source, nullptr) << "run through ctest";
  const std::string cmd = std::string(python) + " " + source + "/tests/checkpoint/check_safetensors.py " + st + " " + path_;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

TEST_F(ToolTest, LsAndShowDescribeTheCheckpoint) {
  Output ls = Run("ls " + path_);
  EXPECT_EQ(ls.code, 0) << ls.text;
  EXPECT_THAT(ls.text, HasSubstr("blocks.1.attn.w_dkv"));
  EXPECT_THAT(ls.text, HasSubstr("[16, 32]"));
  Output show = Run("show " + path_);
  EXPECT_EQ(show.code, 0) << show.text;
  EXPECT_THAT(show.text, HasSubstr("attention=mla_rope"));
  EXPECT_THAT(show.text, HasSubstr("step             50"));
  EXPECT_THAT(show.text, HasSubstr(absl::StrCat("integrity        ", std::filesystem::file_size(path_),
                                                " bytes, xxh3-64/1MiB digest ")));
}

}  // namespace
}  // namespace mla::ckpt

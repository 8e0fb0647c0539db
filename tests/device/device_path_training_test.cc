// The training loop on a non-host device, checked without a GPU:
// RunTraining on a TrainingDevice whose kernels are FakeDeviceKernels (CPU
// arithmetic behind memory host code cannot touch; tests/device/
// fake_device_kernels.h) must produce the CPU device's losses and checkpoints
// bit for bit, including a resume from a checkpoint (parameters and AdamW
// moments copied device → host on save and host → device on load). Clipping
// and AdamW of this test device stage the gradients through the host with the
// kernels' copy calls, so every host access to "device" memory goes through
// a checked copy; the CUDA device runs the same loop with its own kernels
// (tests/runtime/cuda_training_device_test.cc).
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "checkpoint/reader.h"
#include "comm/communicator.h"
#include "comm/local_communicator.h"
#include "gtest/gtest.h"
#include "layers/cpu/cpu_kernels.h"
#include "runtime/data/token_shard.h"
#include "runtime/model_checkpoint.h"
#include "runtime/parameter_layout.h"
#include "runtime/random.h"
#include "runtime/trainer.h"
#include "tests/device/fake_device_kernels.h"

namespace mla {
namespace {

using testing::FakeDeviceKernels;

class FakeTrainingDevice final : public TrainingDevice {
 public:
  explicit FakeTrainingDevice(int* memory_checks) : kernels_(&inner_), memory_checks_(memory_checks) {}

  absl::string_view name() const override { return "fake"; }
  Kernels& kernels() override { return kernels_; }
  Communicator& buffer_comm() override { return local_; }
  absl::Status CheckMemory(const ModelConfig&, const MemoryPlanOptions& o, bool) override {
    ++*memory_checks_;
    return o.micro_batch > 0 ? absl::OkStatus() : absl::InternalError("no micro-batch");
  }
  double MeasurePeakGflops(const ModelConfig&, int64_t) override { return 1.0; }
  absl::Status CreateOptimizer(const AdamWConfig& config, ElementRange range,
                               absl::Span<const DecaySegment> segments) override {
    auto opt = AdamW::Create(config, range, segments);
    if (!opt.ok()) return opt.status();
    opt_.emplace(std::move(*opt));
    return absl::OkStatus();
  }
  absl::StatusOr<ClipResult> ClipGradNorm(float* grads, int64_t n, double max_norm,
                                          Communicator* shard_comm) override {
    std::vector<float> g(static_cast<size_t>(n));
    kernels_.CopyToHost(g.data(), grads, g.size() * sizeof(float));
    absl::StatusOr<ClipResult> r = mla::ClipGradNorm(absl::MakeSpan(g), max_norm, shard_comm);
    kernels_.CopyToDevice(grads, g.data(), g.size() * sizeof(float));
    return r;
  }
  void OptimizerStep(float* params_range, const float* grads_range, float lr) override {
    const size_t n = static_cast<size_t>(opt_->range().size());
    std::vector<float> p(n), g(n);
    kernels_.CopyToHost(p.data(), params_range, n * sizeof(float));
    kernels_.CopyToHost(g.data(), grads_range, n * sizeof(float));
    opt_->Step(p.data(), g.data(), lr);
    kernels_.CopyToDevice(params_range, p.data(), n * sizeof(float));
  }
  int64_t optimizer_step() const override { return opt_->step(); }
  void set_optimizer_step(int64_t step) override { opt_->set_step(step); }
  // Records the parameters each call reports (a device holding a bf16 copy
  // would recast them here).
  absl::Status ParametersChanged(const float* params, int64_t n) override {
    if (reported_ == nullptr) return absl::OkStatus();
    std::vector<float> host(static_cast<size_t>(n));
    kernels_.CopyToHost(host.data(), params, host.size() * sizeof(float));
    reported_->push_back(std::move(host));
    return absl::OkStatus();
  }
  // Collects the buffer of every ParametersChanged, in order, into `out`
  // (which must outlive the device).
  void RecordParameters(std::vector<std::vector<float>>* out) { reported_ = out; }
  absl::Span<const float> MomentsOnHost(AdamMoment which, int64_t offset, int64_t n,
                                        std::vector<float>*) override {
    return (which == AdamMoment::kM ? opt_->m() : opt_->v()).subspan(offset, n);
  }
  absl::Status LoadMoments(AdamMoment which,
                           const std::function<absl::Status(absl::Span<float>)>& fill) override {
    return fill(which == AdamMoment::kM ? opt_->mutable_m() : opt_->mutable_v());
  }

 private:
  CpuKernels inner_;
  FakeDeviceKernels kernels_;
  LocalCommunicator local_;  // world size 1: buffer collectives have nothing to do
  std::optional<AdamW> opt_;
  int* memory_checks_;
  std::vector<std::vector<float>>* reported_ = nullptr;
};

class DevicePathTrainingTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto comm = CreateCommunicator();
    ASSERT_TRUE(comm.ok()) << comm.status();
    comm_ = comm->release();
    dir_ = (std::filesystem::path(::testing::TempDir()) /
            ("mla_device_path_" + std::to_string(::getpid())))
               .string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    WriteShard(dir_ + "/train.bin", 20000, 1);
    WriteShard(dir_ + "/val.bin", 3000, 2);
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(dir_);
    delete comm_;
  }
  static void WriteShard(const std::string& path, int n, uint64_t seed) {
    auto writer = ShardWriter::Create(path, kVocab, 0);
    ASSERT_TRUE(writer.ok()) << writer.status();
    std::vector<uint16_t> tokens(n);
    // A learnable stream: mostly the previous token + 1.
    for (int i = 0; i < n; ++i)
      tokens[i] = static_cast<uint16_t>(UniformAt(seed, 0, i) < 0.8 && i > 0
                                            ? (tokens[i - 1] + 1) % kVocab
                                            : static_cast<int>(UniformAt(seed, 1, i) * kVocab) % kVocab);
    ASSERT_TRUE((*writer)->AppendTokens(tokens, 1).ok());
    ASSERT_TRUE((*writer)->Finish().ok());
  }

  TrainOptions Options(const std::string& out) const {
    TrainOptions o;
    o.model.attention = AttentionKind::kMlaRope;
    o.model.n_layer = 2;
    o.model.d_model = 32;
    o.model.n_head = 4;
    o.model.context_length = 16;
    o.model.kv_rank = 16;
    o.model.rope_dim = 4;
    o.train_data = dir_ + "/train.bin";
    o.val_data = dir_ + "/val.bin";
    o.out_dir = dir_ + "/" + out;
    o.global_batch_tokens = 16 * 8;
    o.micro_batch = 4;  // two accumulation steps
    o.steps = 6;
    o.warmup_steps = 2;
    o.lr = 3e-3f;
    o.min_lr = 3e-4f;
    o.grad_clip = 0.5f;  // low enough to clip
    o.eval_interval = 3;
    o.eval_batches = 2;
    o.log_interval = 1;
    o.ckpt_every = 3;
    o.peak_gflops = 1;
    o.threads = 2;
    return o;
  }

  // The loss and val_loss values of metrics.jsonl, as written.
  static std::vector<std::string> Losses(const std::string& out) {
    std::ifstream in(dir_ + "/" + out + "/metrics.jsonl");
    std::vector<std::string> values;
    std::string line;
    while (std::getline(in, line))
      for (const std::string key : {"\"loss\": ", "\"val_loss\": ", "\"grad_norm\": "}) {
        const size_t at = line.find(key);
        if (at != std::string::npos)
          values.push_back(key + line.substr(at + key.size(), line.find(',', at) - at - key.size()));
      }
    return values;
  }

  // A checkpoint buffer in the model's padded layout.
  static std::vector<float> ReadFlat(const std::string& path, ckpt::FlatBuffer which,
                                     const ModelConfig& cfg) {
    auto reader = ckpt::CheckpointReader::Open(path);
    CHECK(reader.ok()) << reader.status();
    const ParameterLayout layout = BuildParameterLayout(cfg);
    std::vector<float> out(static_cast<size_t>(layout.total));
    CHECK(ReadPaddedRange(*reader, which, layout, 0, absl::MakeSpan(out)).ok());
    return out;
  }

  void ExpectSameCheckpoint(const std::string& a, const std::string& b, const ModelConfig& cfg) {
    for (ckpt::FlatBuffer which :
         {ckpt::FlatBuffer::kParams, ckpt::FlatBuffer::kAdamM, ckpt::FlatBuffer::kAdamV})
      EXPECT_EQ(ReadFlat(a, which, cfg), ReadFlat(b, which, cfg))
          << "flat buffer " << static_cast<int>(which) << " of " << a << " vs " << b;
  }

  static Communicator* comm_;
  static std::string dir_;
  static constexpr int kVocab = 64;
};

Communicator* DevicePathTrainingTest::comm_ = nullptr;
std::string DevicePathTrainingTest::dir_;

TEST_F(DevicePathTrainingTest, TrainingAndResumeEqualTheCpuDeviceBitForBit) {
  TrainOptions cpu = Options("cpu");
  ASSERT_TRUE(RunTraining(cpu, comm_, CreateCpuTrainingDevice(comm_)).ok());

  int checks = 0;
  TrainOptions fake = Options("fake");
  absl::Status s = RunTraining(fake, comm_, std::make_unique<FakeTrainingDevice>(&checks));
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(checks, 1) << "the memory check runs once, before allocation";
  const std::vector<std::string> losses = Losses("cpu");
  ASSERT_EQ(losses.size(), 6u * 2 + 2);  // loss and grad_norm per step, two validations
  EXPECT_EQ(Losses("fake"), losses);
  ExpectSameCheckpoint(dir_ + "/cpu/checkpoints/ckpt-3.h5", dir_ + "/fake/checkpoints/ckpt-3.h5",
                       cpu.model);
  ExpectSameCheckpoint(dir_ + "/cpu/checkpoints/ckpt-6.h5", dir_ + "/fake/checkpoints/ckpt-6.h5",
                       cpu.model);

  // Resume on the fake device from the CPU run's step-3 checkpoint.
  TrainOptions resumed = Options("resumed");
  resumed.resume = dir_ + "/cpu/checkpoints/ckpt-3.h5";
  s = RunTraining(resumed, comm_, std::make_unique<FakeTrainingDevice>(&checks));
  ASSERT_TRUE(s.ok()) << s;
  ExpectSameCheckpoint(dir_ + "/cpu/checkpoints/ckpt-6.h5",
                       dir_ + "/resumed/checkpoints/ckpt-6.h5", cpu.model);
}

TEST_F(DevicePathTrainingTest, ZeroOneOnTheDevicePathEqualsTheCpuDevice) {
  TrainOptions cpu = Options("cpu_zero");
  cpu.zero_stage = 1;
  ASSERT_TRUE(RunTraining(cpu, comm_, CreateCpuTrainingDevice(comm_)).ok());
  int checks = 0;
  TrainOptions fake = Options("fake_zero");
  fake.zero_stage = 1;
  absl::Status s = RunTraining(fake, comm_, std::make_unique<FakeTrainingDevice>(&checks));
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Losses("fake_zero"), Losses("cpu_zero"));
  ExpectSameCheckpoint(dir_ + "/cpu_zero/checkpoints/ckpt-6.h5",
                       dir_ + "/fake_zero/checkpoints/ckpt-6.h5", cpu.model);
}

TEST_F(DevicePathTrainingTest, ParametersChangedFollowsInitialisationAndEveryUpdate) {
  // A bf16 device recasts its weight copy in ParametersChanged, so the loop
  // must report the buffer once after initialisation and after each of the
  // 6 updates, each time holding that step's parameters.
  TrainOptions cpu = Options("cpu_reported");
  cpu.ckpt_every = 1;
  cpu.ckpt_keep_last = 6;
  ASSERT_TRUE(RunTraining(cpu, comm_, CreateCpuTrainingDevice(comm_)).ok());
  int checks = 0;
  std::vector<std::vector<float>> reported;
  auto fake = std::make_unique<FakeTrainingDevice>(&checks);
  fake->RecordParameters(&reported);
  absl::Status s = RunTraining(Options("fake_reported"), comm_, std::move(fake));
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_EQ(reported.size(), 7u);
  for (int step = 1; step <= 6; ++step)
    EXPECT_EQ(reported[step], ReadFlat(dir_ + "/cpu_reported/checkpoints/ckpt-" +
                                           std::to_string(step) + ".h5",
                                       ckpt::FlatBuffer::kParams, cpu.model))
        << "parameters reported after update " << step;
  EXPECT_NE(reported[0], reported[1]) << "the first report is the initialised buffer";
}

TEST_F(DevicePathTrainingTest, CudaDeviceAnswersClearlyWhereItCannotRun) {
  // Without a GPU (or without CUDA in the build) --device=cuda fails at
  // start with a message naming the reason; with one it starts.
  auto device = CreateTrainingDevice("cuda", Precision::kFp32, comm_);
  if (device.ok()) GTEST_SKIP() << "a CUDA device is usable here";
  EXPECT_NE(device.status().message().find("--device=cuda"), absl::string_view::npos)
      << device.status();
  EXPECT_FALSE(CreateTrainingDevice("tpu", Precision::kFp32, comm_).ok());
}

TEST_F(DevicePathTrainingTest, Bf16OnTheCpuIsRefusedWithAMessage) {
  auto device = CreateTrainingDevice("cpu", Precision::kBf16, comm_);
  ASSERT_FALSE(device.ok());
  EXPECT_NE(device.status().message().find("--precision=bf16 is not supported with --device=cpu"),
            absl::string_view::npos)
      << device.status();
}

}  // namespace
}  // namespace mla

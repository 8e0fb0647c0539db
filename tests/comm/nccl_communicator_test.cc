// NcclCommunicator on device buffers, two ranks (mpirun -np 2): runs when
// every rank of the node has its own GPU, skips with a message otherwise.
// Values are small integers, so sums and averages over 2 ranks are exact.
#include "comm/nccl_communicator.h"

#include <cuda_runtime.h>

#include <memory>
#include <vector>

#include "comm/mpi_communicator.h"
#include "glog/logging.h"
#include "gtest/gtest.h"

namespace mla {
namespace {

class NcclCommunicatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto host = MpiCommunicator::Create();
    ASSERT_TRUE(host.ok()) << host.status();
    host_ = std::move(*host);
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) count = 0;
    // Every rank sees the same devices on one node: all skip together.
    if (count < host_->local_size())
      GTEST_SKIP() << "needs one CUDA device per rank (" << host_->local_size() << "), sees "
                   << count;
    auto nccl = NcclCommunicator::Create(*host_, nullptr);
    ASSERT_TRUE(nccl.ok()) << nccl.status();
    nccl_ = std::move(*nccl);
  }
  float* Upload(const std::vector<float>& v) {
    float* p = nullptr;
    CHECK_EQ(cudaMalloc(&p, v.size() * sizeof(float)), cudaSuccess);
    CHECK_EQ(cudaMemcpy(p, v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
    buffers_.push_back(p);
    return p;
  }
  std::vector<float> Download(const float* p, size_t n) {
    std::vector<float> v(n);
    CHECK_EQ(cudaMemcpy(v.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    return v;
  }
  void TearDown() override {
    for (float* p : buffers_) cudaFree(p);
  }
  std::unique_ptr<MpiCommunicator> host_;
  std::unique_ptr<NcclCommunicator> nccl_;
  std::vector<float*> buffers_;
};

TEST_F(NcclCommunicatorTest, AllReduceAveragesDeviceBuffer) {
  const int r = nccl_->rank();
  std::vector<float> v(1000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(2 * i + 4 * r);
  float* d = Upload(v);
  ASSERT_TRUE(nccl_->AllReduce(absl::MakeSpan(d, v.size()), ReduceOp::kAverage).ok());
  const auto out = Download(d, v.size());
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(out[i], static_cast<float>(2 * i + 2));
}

TEST_F(NcclCommunicatorTest, AllReduceStagesHostScalars) {
  double loss = 1.5 + nccl_->rank();
  ASSERT_TRUE(nccl_->AllReduce(absl::MakeSpan(&loss, 1), ReduceOp::kSum).ok());
  EXPECT_EQ(loss, 4.0);
}

TEST_F(NcclCommunicatorTest, StartedAllReduceCompletesOnWait) {
  std::vector<float> v(4096, 1.0f + nccl_->rank());
  float* d = Upload(v);
  auto req = nccl_->StartAllReduce(absl::MakeSpan(d, v.size()), ReduceOp::kSum);
  ASSERT_TRUE(req.ok()) << req.status();
  ASSERT_TRUE(req->Wait().ok());
  EXPECT_EQ(Download(d, v.size()), std::vector<float>(v.size(), 3.0f));
}

// 1000 values = 63 blocks: shards of 32·16 and 31·16−8 values, uneven.
TEST_F(NcclCommunicatorTest, ReduceScatterThenAllGatherRoundTripsUnevenShards) {
  for (int64_t total : {int64_t{1024}, int64_t{1000}}) {
    std::vector<float> v(total);
    for (int64_t i = 0; i < total; ++i) v[i] = static_cast<float>(i + nccl_->rank());
    float* d = Upload(v);
    ASSERT_TRUE(nccl_->ReduceScatter(absl::MakeSpan(d, total), ReduceOp::kSum).ok());
    ASSERT_TRUE(nccl_->AllGather(absl::MakeSpan(d, total)).ok());
    const auto out = Download(d, total);
    for (int64_t i = 0; i < total; ++i) ASSERT_EQ(out[i], static_cast<float>(2 * i + 1)) << total << " " << i;
  }
}

}  // namespace
}  // namespace mla

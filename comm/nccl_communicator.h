#pragma once
// NcclCommunicator: the Communicator contract (comm/communicator.h) for GPU
// buffers, over NCCL. Started collectively over a host Communicator (MPI):
// each rank picks its GPU from its node-local rank, the ranks check that no
// GPU is driven twice, rank 0's NCCL unique id is broadcast over MPI
// (comm/nccl_bootstrap.h), then ncclCommInitRank.
//
// Streams and ordering: collectives run on the communicator's own stream.
// Each one first waits (cudaStreamWaitEvent) for the work already queued on
// the compute stream given at Create, so a gradient bucket is reduced as soon
// as backward has produced it while backward goes on queuing work. Blocking
// calls return once the result is in the buffer; StartAllReduce returns at
// once and its request's Wait()/Test() synchronise with an event.
//
// Buffers: device memory. Host spans (small scalars such as a loss sum or a
// gradient norm) are staged through a device buffer, so the trainer's host
// reductions work unchanged. kAverage is ncclAvg (no host scaling).
// ReduceScatter/AllGather use ncclReduceScatter/ncclAllGather in place when
// every rank's ShardRange has the same size, and grouped ncclReduce /
// ncclBroadcast per shard otherwise (ShardRange's shards may differ by one
// 16-element block).
//
// Failures: every CUDA and NCCL error becomes a status naming the call and
// NCCL's last error text. The host communicator must outlive this one. One
// thread at a time.
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "comm/communicator.h"

namespace mla {

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `host`. Sets the chosen device current on this thread.
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> Create(Communicator& host,
                                                                 cudaStream_t compute_stream);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  int local_rank() const override { return host_.local_rank(); }
  int local_size() const override { return host_.local_size(); }
  int device() const { return device_; }

  MLA_COMMUNICATOR_COLLECTIVES;
  absl::Status Barrier() override;

 protected:
  absl::Status WaitRequest(uint64_t* handle) override;
  absl::StatusOr<bool> TestRequest(uint64_t* handle) override;

 private:
  NcclCommunicator(Communicator& host, int device, cudaStream_t compute)
      : host_(host), device_(device), compute_(compute) {}
  absl::Status Nccl(ncclResult_t result, const char* call) const;
  // Makes the comm stream wait for the compute stream's queued work.
  absl::Status AfterCompute();
  absl::Status Finish();  // waits for the comm stream
  // Runs an in-place all-reduce of `bytes` at `data`, staging host memory.
  absl::Status AllReduceBytes(void* data, size_t count, size_t element_bytes,
                              ncclDataType_t type, ReduceOp op);

  Communicator& host_;
  int device_;
  cudaStream_t compute_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t compute_done_ = nullptr;
  ncclComm_t comm_ = nullptr;
  void* staging_ = nullptr;  // device copy of host spans
  size_t staging_bytes_ = 0;
  std::vector<cudaEvent_t> events_;   // indexed by request handle
  std::vector<uint64_t> free_events_;
};

}  // namespace mla

#include "comm/nccl_communicator.h"

#include <unistd.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/cuda_status.h"
#include "base/status_macros.h"
#include "comm/nccl_bootstrap.h"
#include "comm/nccl_device.h"
#include "glog/logging.h"

namespace mla {
namespace {

absl::Status Cuda(cudaError_t e, const char* call) { return cuda::CudaStatus(e, call); }

absl::StatusOr<ncclRedOp_t> ToNccl(ReduceOp op, bool floating) {
  switch (op) {
    case ReduceOp::kSum: return ncclSum;
    case ReduceOp::kMax: return ncclMax;
    case ReduceOp::kMin: return ncclMin;
    case ReduceOp::kAverage:
      if (!floating) return absl::InvalidArgumentError("average of integers is not supported");
      return ncclAvg;
  }
  return absl::InvalidArgumentError("unknown reduction");
}

bool IsDevicePointer(const void* p) {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error of an unknown host pointer
    return false;
  }
  return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
}

// ShardRange sizes of every rank; true when all are equal.
bool EqualShards(int64_t total, int size, int64_t* count) {
  *count = ShardRange(total, 0, size).size();
  for (int r = 1; r < size; ++r)
    if (ShardRange(total, r, size).size() != *count) return false;
  return *count * size == total;
}

}  // namespace

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(
    Communicator& host, cudaStream_t compute_stream) {
  absl::StatusOr<int> device = SelectLocalCudaDevice(host.local_rank(), host.local_size());
  absl::Status local = device.status();
  std::string identity;
  if (local.ok()) {
    char bus[32] = {};
    local = Cuda(cudaDeviceGetPCIBusId(bus, sizeof(bus), *device), "cudaDeviceGetPCIBusId");
    char hostname[64] = {};
    gethostname(hostname, sizeof(hostname) - 1);
    identity = absl::StrCat(hostname, ":", bus);
  }
  MLA_RETURN_IF_ERROR(AgreeOnStatus(host, local));
  MLA_RETURN_IF_ERROR(CheckDistinctDevices(host, identity));
  absl::StatusOr<NcclUniqueIdBytes> id =
      ExchangeUniqueId(host, []() -> absl::StatusOr<NcclUniqueIdBytes> {
        ncclUniqueId raw;
        const ncclResult_t r = ncclGetUniqueId(&raw);
        if (r != ncclSuccess)
          return absl::InternalError(absl::StrCat("ncclGetUniqueId: ", ncclGetErrorString(r)));
        NcclUniqueIdBytes bytes;
        static_assert(sizeof(raw) == kNcclUniqueIdBytes);
        std::memcpy(bytes.data(), &raw, sizeof(raw));
        return bytes;
      });
  if (!id.ok()) return id.status();

  std::unique_ptr<NcclCommunicator> c(new NcclCommunicator(host, *device, compute_stream));
  local = Cuda(cudaStreamCreateWithFlags(&c->stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  if (local.ok())
    local = Cuda(cudaEventCreateWithFlags(&c->compute_done_, cudaEventDisableTiming),
                 "cudaEventCreate");
  if (local.ok()) {
    ncclUniqueId raw;
    std::memcpy(&raw, id->data(), sizeof(raw));
    local = c->Nccl(ncclCommInitRank(&c->comm_, host.size(), raw, host.rank()),
                    "ncclCommInitRank");
  }
  MLA_RETURN_IF_ERROR(AgreeOnStatus(host, local));
  return c;
}

NcclCommunicator::~NcclCommunicator() {
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  for (cudaEvent_t e : events_) cudaEventDestroy(e);
  if (comm_ != nullptr) ncclCommDestroy(comm_);
  if (compute_done_ != nullptr) cudaEventDestroy(compute_done_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
  if (staging_ != nullptr) cudaFree(staging_);
}

absl::Status NcclCommunicator::Nccl(ncclResult_t result, const char* call) const {
  if (result == ncclSuccess) return absl::OkStatus();
  std::string detail = comm_ != nullptr ? ncclGetLastError(comm_) : "";
  return absl::InternalError(absl::StrCat(call, ": ", ncclGetErrorString(result),
                                          detail.empty() ? "" : " (", detail,
                                          detail.empty() ? "" : ")"));
}

absl::Status NcclCommunicator::AfterCompute() {
  MLA_RETURN_IF_ERROR(Cuda(cudaEventRecord(compute_done_, compute_), "cudaEventRecord"));
  return Cuda(cudaStreamWaitEvent(stream_, compute_done_, 0), "cudaStreamWaitEvent");
}

absl::Status NcclCommunicator::Finish() {
  return Cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize(NCCL stream)");
}

absl::Status NcclCommunicator::AllReduceBytes(void* data, size_t count, size_t element_bytes,
                                              ncclDataType_t type, ReduceOp op) {
  const bool floating = type == ncclFloat32 || type == ncclFloat64;
  absl::StatusOr<ncclRedOp_t> red = ToNccl(op, floating);
  if (!red.ok()) return red.status();
  if (count == 0) return absl::OkStatus();
  const size_t bytes = count * element_bytes;
  const bool device = IsDevicePointer(data);
  void* buffer = data;
  if (!device) {
    if (staging_bytes_ < bytes) {
      if (staging_ != nullptr) cudaFree(staging_);
      staging_ = nullptr;
      staging_bytes_ = 0;
      MLA_RETURN_IF_ERROR(Cuda(cudaMalloc(&staging_, bytes), "cudaMalloc(staging)"));
      staging_bytes_ = bytes;
    }
    buffer = staging_;
    MLA_RETURN_IF_ERROR(Cuda(cudaMemcpyAsync(buffer, data, bytes, cudaMemcpyHostToDevice, stream_),
                              "cudaMemcpyAsync(to staging)"));
  } else {
    MLA_RETURN_IF_ERROR(AfterCompute());
  }
  MLA_RETURN_IF_ERROR(
      Nccl(ncclAllReduce(buffer, buffer, count, type, *red, comm_, stream_), "ncclAllReduce"));
  if (!device)
    MLA_RETURN_IF_ERROR(Cuda(cudaMemcpyAsync(data, buffer, bytes, cudaMemcpyDeviceToHost, stream_),
                              "cudaMemcpyAsync(from staging)"));
  return Finish();
}

absl::Status NcclCommunicator::AllReduce(absl::Span<float> data, ReduceOp op) {
  return AllReduceBytes(data.data(), data.size(), sizeof(float), ncclFloat32, op);
}
absl::Status NcclCommunicator::AllReduce(absl::Span<double> data, ReduceOp op) {
  return AllReduceBytes(data.data(), data.size(), sizeof(double), ncclFloat64, op);
}
absl::Status NcclCommunicator::AllReduce(absl::Span<int64_t> data, ReduceOp op) {
  return AllReduceBytes(data.data(), data.size(), sizeof(int64_t), ncclInt64, op);
}

absl::StatusOr<CommRequest> NcclCommunicator::StartAllReduce(absl::Span<float> data,
                                                             ReduceOp op) {
  if (op != ReduceOp::kSum && op != ReduceOp::kAverage)
    return absl::InvalidArgumentError("StartAllReduce supports sum and average only");
  if (!data.empty() && !IsDevicePointer(data.data()))
    return absl::InvalidArgumentError("StartAllReduce needs device memory");
  absl::StatusOr<ncclRedOp_t> red = ToNccl(op, true);
  if (!red.ok()) return red.status();
  MLA_RETURN_IF_ERROR(AfterCompute());
  MLA_RETURN_IF_ERROR(Nccl(ncclAllReduce(data.data(), data.data(), data.size(), ncclFloat32,
                                          *red, comm_, stream_),
                            "ncclAllReduce"));
  uint64_t handle;
  if (!free_events_.empty()) {
    handle = free_events_.back();
    free_events_.pop_back();
  } else {
    cudaEvent_t e = nullptr;
    MLA_RETURN_IF_ERROR(
        Cuda(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate"));
    handle = events_.size();
    events_.push_back(e);
  }
  MLA_RETURN_IF_ERROR(Cuda(cudaEventRecord(events_[handle], stream_), "cudaEventRecord"));
  // The average is ncclAvg, so the request has no host scaling to do.
  return MakeRequest(handle, data.data(), static_cast<int64_t>(data.size()), 1.0f);
}

absl::Status NcclCommunicator::WaitRequest(uint64_t* handle) {
  const absl::Status s = Cuda(cudaEventSynchronize(events_[*handle]), "cudaEventSynchronize");
  free_events_.push_back(*handle);
  return s;
}

absl::StatusOr<bool> NcclCommunicator::TestRequest(uint64_t* handle) {
  const cudaError_t e = cudaEventQuery(events_[*handle]);
  if (e == cudaErrorNotReady) return false;
  free_events_.push_back(*handle);
  MLA_RETURN_IF_ERROR(Cuda(e, "cudaEventQuery"));
  return true;
}

absl::Status NcclCommunicator::ReduceScatter(absl::Span<float> data, ReduceOp op) {
  if (op != ReduceOp::kSum && op != ReduceOp::kAverage)
    return absl::InvalidArgumentError("ReduceScatter supports sum and average only");
  absl::StatusOr<ncclRedOp_t> red = ToNccl(op, true);
  if (!red.ok()) return red.status();
  MLA_RETURN_IF_ERROR(AfterCompute());
  const int64_t total = static_cast<int64_t>(data.size());
  int64_t count = 0;
  if (EqualShards(total, size(), &count)) {
    MLA_RETURN_IF_ERROR(Nccl(ncclReduceScatter(data.data(), data.data() + rank() * count, count,
                                                ncclFloat32, *red, comm_, stream_),
                              "ncclReduceScatter"));
  } else {
    MLA_RETURN_IF_ERROR(Nccl(ncclGroupStart(), "ncclGroupStart"));
    for (int r = 0; r < size(); ++r) {
      const ElementRange s = ShardRange(total, r, size());
      MLA_RETURN_IF_ERROR(Nccl(ncclReduce(data.data() + s.begin, data.data() + s.begin, s.size(),
                                           ncclFloat32, *red, r, comm_, stream_),
                                "ncclReduce"));
    }
    MLA_RETURN_IF_ERROR(Nccl(ncclGroupEnd(), "ncclGroupEnd"));
  }
  return Finish();
}

absl::Status NcclCommunicator::AllGather(absl::Span<float> data) {
  MLA_RETURN_IF_ERROR(AfterCompute());
  const int64_t total = static_cast<int64_t>(data.size());
  int64_t count = 0;
  if (EqualShards(total, size(), &count)) {
    MLA_RETURN_IF_ERROR(Nccl(ncclAllGather(data.data() + rank() * count, data.data(), count,
                                            ncclFloat32, comm_, stream_),
                              "ncclAllGather"));
  } else {
    MLA_RETURN_IF_ERROR(Nccl(ncclGroupStart(), "ncclGroupStart"));
    for (int r = 0; r < size(); ++r) {
      const ElementRange s = ShardRange(total, r, size());
      MLA_RETURN_IF_ERROR(Nccl(ncclBroadcast(data.data() + s.begin, data.data() + s.begin,
                                              s.size(), ncclFloat32, r, comm_, stream_),
                                "ncclBroadcast"));
    }
    MLA_RETURN_IF_ERROR(Nccl(ncclGroupEnd(), "ncclGroupEnd"));
  }
  return Finish();
}

absl::Status NcclCommunicator::Broadcast(absl::Span<uint8_t> data, int root) {
  if (!data.empty() && !IsDevicePointer(data.data())) return host_.Broadcast(data, root);
  MLA_RETURN_IF_ERROR(AfterCompute());
  MLA_RETURN_IF_ERROR(Nccl(ncclBroadcast(data.data(), data.data(), data.size(), ncclUint8, root,
                                          comm_, stream_),
                            "ncclBroadcast"));
  return Finish();
}

absl::Status NcclCommunicator::Barrier() {
  MLA_RETURN_IF_ERROR(Finish());
  return host_.Barrier();
}

}  // namespace mla

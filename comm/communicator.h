#pragma once
// The collective-communication contract every rank of a training job speaks:
// the `Communicator` interface (all-reduce, non-blocking all-reduce,
// reduce-scatter / all-gather over a sharded flat buffer, broadcast, barrier),
// the shard boundaries that ZeRO-1 and the checkpoint agree on
// (`ShardRange`), and `AgreeOnStatus`, which turns one rank's error into the
// same error on every rank.
//
// Collective semantics: every rank must call the same collectives in the same
// order with the same sizes (MPI's rule). Buffers are host memory here; a
// device implementation (NCCL) keeps the same contract for device pointers.
//
// Thread safety: a Communicator is used by one thread at a time (the MPI
// implementation asks only for MPI_THREAD_FUNNELED). Failures of the transport
// come back as absl::Status naming the call; a rank that cannot continue calls
// AbortJob (comm/mpi_communicator.h) so the whole job ends instead of hanging.
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace mla {

// Element-wise reduction. kAverage is a sum followed by a multiplication by
// 1/size (exact for power-of-two sizes); it is rejected for integers.
enum class ReduceOp { kSum, kAverage, kMax, kMin };

// A half-open range [begin, end) of elements of a flat buffer.
struct ElementRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
  bool operator==(const ElementRange&) const = default;
};

// Shards are aligned to this many floats (64 bytes, a cache line and an AVX-512
// vector) so no two ranks' shards share a cache line and every shard but the
// last starts on a vector boundary.
inline constexpr int64_t kShardAlignment = 16;

// The shard of a `total`-element buffer owned by `rank` of `size`: contiguous,
// in rank order, covering [0, total) exactly; the buffer is cut into blocks of
// kShardAlignment elements and the first (blocks % size) ranks get one extra
// block, so shards' block counts differ by at most one; only the shard that
// ends the buffer may hold a partial block (trailing shards may be empty when
// total is small).
ElementRange ShardRange(int64_t total, int rank, int size);

class Communicator;

// A non-blocking collective in flight. Move-only value type; starting one
// allocates nothing. The buffer it was started on must stay alive and
// untouched until Wait() returns (or Test() reports completion). The
// Communicator that started it must outlive it.
class CommRequest {
 public:
  // A request that is already complete (what a size-1 communicator returns).
  CommRequest() = default;
  CommRequest(CommRequest&& other) noexcept { *this = std::move(other); }
  CommRequest& operator=(CommRequest&& other) noexcept;
  CommRequest(const CommRequest&) = delete;
  CommRequest& operator=(const CommRequest&) = delete;
  // Waits for a request still pending (logging a failure): the collective may
  // still be writing into its buffer, so it cannot be abandoned.
  ~CommRequest();

  // Blocks until the collective has completed and its result (including the
  // 1/size scaling of an average) is in the buffer. OK on a completed request.
  absl::Status Wait();
  // Drives progress without blocking; true once complete (then as Wait()).
  absl::StatusOr<bool> Test();
  bool pending() const { return owner_ != nullptr; }

 private:
  friend class Communicator;
  CommRequest(Communicator* owner, uint64_t handle, float* data, int64_t count, float scale)
      : owner_(owner), handle_(handle), data_(data), count_(count), scale_(scale) {}
  void Complete();

  Communicator* owner_ = nullptr;  // null once complete
  uint64_t handle_ = 0;            // the implementation's opaque request id
  float* data_ = nullptr;          // scaled by scale_ on completion
  int64_t count_ = 0;
  float scale_ = 1.0f;
};

// The collectives every Communicator implementation defines, declared once
// for all of them: use inside the implementation's public section.
#define MLA_COMMUNICATOR_COLLECTIVES                                                        \
  absl::Status AllReduce(absl::Span<float> data, ReduceOp op) override;                     \
  absl::Status AllReduce(absl::Span<double> data, ReduceOp op) override;                    \
  absl::Status AllReduce(absl::Span<int64_t> data, ReduceOp op) override;                   \
  absl::StatusOr<CommRequest> StartAllReduce(absl::Span<float> data, ReduceOp op) override; \
  absl::Status ReduceScatter(absl::Span<float> data, ReduceOp op) override;                 \
  absl::Status AllGather(absl::Span<float> data) override;                                  \
  absl::Status Broadcast(absl::Span<uint8_t> data, int root) override

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Rank among the ranks that share this node's memory, and their number;
  // used to pick a GPU.
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;

  // In-place all-reduce: on return every rank holds the reduction of all
  // ranks' `data`. kAverage is allowed for float and double only.
  virtual absl::Status AllReduce(absl::Span<float> data, ReduceOp op) = 0;
  virtual absl::Status AllReduce(absl::Span<double> data, ReduceOp op) = 0;
  virtual absl::Status AllReduce(absl::Span<int64_t> data, ReduceOp op) = 0;

  // Starts an in-place all-reduce (kSum or kAverage) and returns at once.
  // Many may be in flight; each is completed by its request's Wait().
  virtual absl::StatusOr<CommRequest> StartAllReduce(absl::Span<float> data, ReduceOp op) = 0;

  // `data` is the whole flat buffer (same size on every rank). On return the
  // elements of ShardRange(data.size(), rank(), size()) hold the reduction
  // (kSum or kAverage) of that shard over all ranks; the other elements are
  // unspecified.
  virtual absl::Status ReduceScatter(absl::Span<float> data, ReduceOp op) = 0;
  // `data` is the whole flat buffer; each rank's shard (ShardRange) is its
  // contribution. On return every rank holds every shard.
  virtual absl::Status AllGather(absl::Span<float> data) = 0;

  // Copies `root`'s bytes into every rank's `data` (same size on every rank).
  virtual absl::Status Broadcast(absl::Span<uint8_t> data, int root) = 0;
  virtual absl::Status Barrier() = 0;

 protected:
  // For implementations: wrap an implementation request id; the request calls
  // back WaitRequest/TestRequest with it and scales `data` by `scale` after.
  CommRequest MakeRequest(uint64_t handle, float* data, int64_t count, float scale) {
    return CommRequest(this, handle, data, count, scale);
  }
  // Complete the request `handle` (which the implementation may rewrite).
  virtual absl::Status WaitRequest(uint64_t* handle) = 0;
  virtual absl::StatusOr<bool> TestRequest(uint64_t* handle) = 0;

 private:
  friend class CommRequest;
};

// Collective: every rank passes its local status; every rank gets back OK if
// all were OK, else the error of the lowest failing rank (same code, message
// prefixed with that rank), so all ranks take the same branch. Transport
// failures are returned as they are.
absl::Status AgreeOnStatus(Communicator& comm, const absl::Status& local);

// A communicator for this process: MpiCommunicator over MPI_COMM_WORLD when
// MPI is initialised (see MpiSession), otherwise a LocalCommunicator.
// `collective_timeout_s` > 0: a collective that makes no progress for that
// long ends the job naming the silent ranks (MpiCommunicator::Create).
absl::StatusOr<std::unique_ptr<Communicator>> CreateCommunicator(double collective_timeout_s = 0);

}  // namespace mla

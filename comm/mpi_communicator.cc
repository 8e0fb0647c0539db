#include "comm/mpi_communicator.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "comm/scale.h"
#include "glog/logging.h"

namespace mla {
namespace {

absl::Status MpiCall(int err, absl::string_view call) {
  if (err == MPI_SUCCESS) return absl::OkStatus();
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(err, text, &len) != MPI_SUCCESS) len = 0;
  return absl::InternalError(
      absl::StrCat(call, " failed: ", absl::string_view(text, static_cast<size_t>(len)),
                   " (MPI error ", err, ")"));
}

// MPI counts are int; a larger buffer must be split by the caller (buckets).
absl::StatusOr<int> MpiCount(size_t n, absl::string_view call) {
  if (n > static_cast<size_t>(INT_MAX))
    return absl::InvalidArgumentError(
        absl::StrCat(call, ": ", n, " elements exceed MPI's int count; use smaller buckets"));
  return static_cast<int>(n);
}

absl::StatusOr<MPI_Op> ToMpiOp(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAverage:
      return MPI_SUM;
    case ReduceOp::kMax:
      return MPI_MAX;
    case ReduceOp::kMin:
      return MPI_MIN;
  }
  return absl::InvalidArgumentError("unknown ReduceOp");
}

absl::Status CheckSumOrAverage(ReduceOp op, absl::string_view call) {
  if (op != ReduceOp::kSum && op != ReduceOp::kAverage)
    return absl::InvalidArgumentError(absl::StrCat(call, ": only kSum and kAverage are supported"));
  return absl::OkStatus();
}

// A request travels inside CommRequest as an opaque 64-bit id (Open MPI's
// MPI_Request is a pointer, MPICH's an int), so starting one allocates nothing.
static_assert(sizeof(MPI_Request) <= sizeof(uint64_t));
uint64_t ToHandle(MPI_Request r) {
  uint64_t h = 0;
  std::memcpy(&h, &r, sizeof(r));
  return h;
}
MPI_Request FromHandle(uint64_t h) {
  MPI_Request r;
  std::memcpy(&r, &h, sizeof(r));
  return r;
}

}  // namespace

bool LaunchedUnderMpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK",
                          "MPI_LOCALNRANKS", "MV2_COMM_WORLD_SIZE"}) {
    if (std::getenv(var) != nullptr) return true;
  }
  return false;
}

absl::StatusOr<std::unique_ptr<MpiSession>> MpiSession::Init(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  int provided = MPI_THREAD_SINGLE;
  bool owns = false;
  if (initialized) {
    MLA_RETURN_IF_ERROR(MpiCall(MPI_Query_thread(&provided), "MPI_Query_thread"));
  } else {
    MLA_RETURN_IF_ERROR(
        MpiCall(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread"));
    owns = true;
  }
  auto session = std::unique_ptr<MpiSession>(new MpiSession(owns, provided));
  if (provided < MPI_THREAD_FUNNELED)
    return absl::FailedPreconditionError(
        absl::StrCat("MPI provides thread level ", provided,
                     ", below MPI_THREAD_FUNNELED which OpenMP regions need"));
  return session;
}

MpiSession::~MpiSession() {
  if (!owns_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void AbortJob(const absl::Status& status) {
  int initialized = 0, finalized = 0, rank = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  const bool running = initialized && !finalized;
  if (running) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  std::fprintf(stderr, "mlatrain: rank %d: %s\n", rank, status.ToString().c_str());
  std::fflush(stderr);
  if (running) MPI_Abort(MPI_COMM_WORLD, 1);
  // Without MPI there is no other rank to stop; end this process.
  std::_Exit(EXIT_FAILURE);
}

absl::StatusOr<std::unique_ptr<MpiCommunicator>> MpiCommunicator::Create(double collective_timeout_s) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized)
    return absl::FailedPreconditionError(
        "MpiCommunicator::Create: MPI is not initialised (create an MpiSession first)");
  if (!(collective_timeout_s >= 0))
    return absl::InvalidArgumentError("the collective timeout must be >= 0 seconds (0: none)");
  MPI_Comm dup = MPI_COMM_NULL, probe = MPI_COMM_NULL;
  MLA_RETURN_IF_ERROR(MpiCall(MPI_Comm_dup(MPI_COMM_WORLD, &dup), "MPI_Comm_dup"));
  absl::Status probe_dup = MpiCall(MPI_Comm_dup(MPI_COMM_WORLD, &probe), "MPI_Comm_dup");
  if (!probe_dup.ok()) {
    MPI_Comm_free(&dup);
    return probe_dup;
  }
  auto c = std::unique_ptr<MpiCommunicator>(new MpiCommunicator(dup, probe, collective_timeout_s));
  MLA_RETURN_IF_ERROR(
      MpiCall(MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler"));
  MLA_RETURN_IF_ERROR(MpiCall(MPI_Comm_rank(dup, &c->rank_), "MPI_Comm_rank"));
  MLA_RETURN_IF_ERROR(MpiCall(MPI_Comm_size(dup, &c->size_), "MPI_Comm_size"));
  MPI_Comm node = MPI_COMM_NULL;
  MLA_RETURN_IF_ERROR(MpiCall(
      MPI_Comm_split_type(dup, MPI_COMM_TYPE_SHARED, c->rank_, MPI_INFO_NULL, &node),
      "MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)"));
  absl::Status s = MpiCall(MPI_Comm_rank(node, &c->local_rank_), "MPI_Comm_rank(node)");
  if (s.ok()) s = MpiCall(MPI_Comm_size(node, &c->local_size_), "MPI_Comm_size(node)");
  MPI_Comm_free(&node);
  MLA_RETURN_IF_ERROR(s);
  return c;
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) {
    LOG(WARNING) << "MpiCommunicator destroyed after MPI_Finalize; its communicator leaks";
    return;
  }
  MPI_Comm_free(&comm_);
  MPI_Comm_free(&probe_comm_);
}

absl::Status MpiCommunicator::Complete(MPI_Request* request, absl::string_view call) {
  if (timeout_s_ <= 0) return MpiCall(MPI_Wait(request, MPI_STATUS_IGNORE), call);
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    int done = 0;
    MLA_RETURN_IF_ERROR(MpiCall(MPI_Test(request, &done, MPI_STATUS_IGNORE), call));
    if (done) return absl::OkStatus();
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (waited > timeout_s_) AbortNamingSilentRanks(call, waited);
    // Non-blocking collectives progress only inside MPI calls, so poll
    // without pause as a blocking collective would; a wait past a second is
    // already abnormal (a slow or stopped peer): then poll gently instead of
    // burning a core.
    if (waited > 1.0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void MpiCommunicator::AbortNamingSilentRanks(absl::string_view call, double waited) {
  // Every rank stuck in a collective gets here within about the same time
  // (they wait on the same missing peer), announces itself to every other
  // rank and listens for a few seconds; whoever does not answer is silent.
  constexpr int kTag = 7;
  const double listen_s = std::min(5.0, std::max(1.0, timeout_s_ / 2));
  const int64_t me = rank_;
  std::vector<int64_t> heard(static_cast<size_t>(size_), -1);
  std::vector<MPI_Request> sends(static_cast<size_t>(size_), MPI_REQUEST_NULL);
  std::vector<MPI_Request> recvs(static_cast<size_t>(size_), MPI_REQUEST_NULL);
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    MPI_Irecv(&heard[r], 1, MPI_INT64_T, r, kTag, probe_comm_, &recvs[r]);
    MPI_Isend(&me, 1, MPI_INT64_T, r, kTag, probe_comm_, &sends[r]);
  }
  const auto start = std::chrono::steady_clock::now();
  std::vector<int> silent, answered;
  for (;;) {
    silent.clear();
    for (int r = 0; r < size_; ++r) {
      int done = 1;
      if (r != rank_ && recvs[r] != MPI_REQUEST_NULL) MPI_Test(&recvs[r], &done, MPI_STATUS_IGNORE);
      if (!done) silent.push_back(r);
    }
    if (silent.empty() ||
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > listen_s)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (int r = 0; r < size_; ++r)
    if (r != rank_ && std::find(silent.begin(), silent.end(), r) == silent.end())
      answered.push_back(r);
  const std::string who =
      silent.empty()
          ? std::string("every rank answered a liveness probe (the ranks may be waiting in "
                        "different collectives)")
          : absl::StrCat("silent: rank ", absl::StrJoin(silent, ", rank "),
                         " (stopped, hung, or slower than the timeout); answered: ",
                         answered.empty() ? "none" : absl::StrCat("rank ", absl::StrJoin(answered, ", rank ")));
  AbortJob(absl::DeadlineExceededError(
      absl::StrFormat("%s made no progress for %.0f s (--collective_timeout=%g); %s",
                      std::string(call), waited, timeout_s_, who)));
}

absl::Status MpiCommunicator::AllReduceInPlace(void* data, size_t count, MPI_Datatype type,
                                               absl::string_view type_name, ReduceOp op) {
  if (count == 0) return absl::OkStatus();
  MLA_ASSIGN_OR_RETURN(int n, MpiCount(count, absl::StrCat("MPI_Allreduce(", type_name, ")")));
  MLA_ASSIGN_OR_RETURN(MPI_Op mpi_op, ToMpiOp(op));
  const std::string call = absl::StrCat("MPI_Iallreduce(", type_name, ")");
  MPI_Request r = MPI_REQUEST_NULL;
  MLA_RETURN_IF_ERROR(
      MpiCall(MPI_Iallreduce(MPI_IN_PLACE, data, n, type, mpi_op, comm_, &r), call));
  return Complete(&r, call);
}

absl::Status MpiCommunicator::AllReduce(absl::Span<float> data, ReduceOp op) {
  MLA_RETURN_IF_ERROR(AllReduceInPlace(data.data(), data.size(), MPI_FLOAT, "float", op));
  if (op == ReduceOp::kAverage) ScaleInPlace(data, 1.0f / static_cast<float>(size_));
  return absl::OkStatus();
}

absl::Status MpiCommunicator::AllReduce(absl::Span<double> data, ReduceOp op) {
  MLA_RETURN_IF_ERROR(AllReduceInPlace(data.data(), data.size(), MPI_DOUBLE, "double", op));
  if (op == ReduceOp::kAverage)
    for (double& x : data) x *= 1.0 / size_;
  return absl::OkStatus();
}

absl::Status MpiCommunicator::AllReduce(absl::Span<int64_t> data, ReduceOp op) {
  if (op == ReduceOp::kAverage)
    return absl::InvalidArgumentError("AllReduce: kAverage is not defined for int64");
  return AllReduceInPlace(data.data(), data.size(), MPI_INT64_T, "int64", op);
}

absl::StatusOr<CommRequest> MpiCommunicator::StartAllReduce(absl::Span<float> data, ReduceOp op) {
  MLA_RETURN_IF_ERROR(CheckSumOrAverage(op, "StartAllReduce"));
  MLA_ASSIGN_OR_RETURN(int n, MpiCount(data.size(), "MPI_Iallreduce"));
  MPI_Request request = MPI_REQUEST_NULL;
  MLA_RETURN_IF_ERROR(MpiCall(
      MPI_Iallreduce(MPI_IN_PLACE, data.data(), n, MPI_FLOAT, MPI_SUM, comm_, &request),
      "MPI_Iallreduce"));
  const float scale = op == ReduceOp::kAverage ? 1.0f / static_cast<float>(size_) : 1.0f;
  return MakeRequest(ToHandle(request), data.data(), n, scale);
}

absl::Status MpiCommunicator::WaitRequest(uint64_t* handle) {
  MPI_Request r = FromHandle(*handle);
  absl::Status s = Complete(&r, "MPI_Wait(MPI_Iallreduce)");
  *handle = ToHandle(r);
  return s;
}

absl::StatusOr<bool> MpiCommunicator::TestRequest(uint64_t* handle) {
  MPI_Request r = FromHandle(*handle);
  int done = 0;
  absl::Status s = MpiCall(MPI_Test(&r, &done, MPI_STATUS_IGNORE), "MPI_Test(MPI_Iallreduce)");
  *handle = ToHandle(r);
  if (!s.ok()) return s;
  return done != 0;
}

absl::Status MpiCommunicator::ComputeShardCounts(int64_t total) {
  if (total == counts_total_) return absl::OkStatus();
  if (total > INT_MAX)
    return absl::InvalidArgumentError(absl::StrCat(
        "sharded collective over ", total, " floats exceeds MPI's int displacements"));
  counts_.resize(size_);
  displs_.resize(size_);
  for (int r = 0; r < size_; ++r) {
    const ElementRange shard = ShardRange(total, r, size_);
    counts_[r] = static_cast<int>(shard.size());
    displs_[r] = static_cast<int>(shard.begin);
  }
  counts_total_ = total;
  return absl::OkStatus();
}

absl::Status MpiCommunicator::ReduceScatter(absl::Span<float> data, ReduceOp op) {
  MLA_RETURN_IF_ERROR(CheckSumOrAverage(op, "ReduceScatter"));
  const int64_t total = static_cast<int64_t>(data.size());
  if (total == 0) return absl::OkStatus();
  MLA_RETURN_IF_ERROR(ComputeShardCounts(total));
  MPI_Request r = MPI_REQUEST_NULL;
  MLA_RETURN_IF_ERROR(MpiCall(MPI_Ireduce_scatter(MPI_IN_PLACE, data.data(), counts_.data(),
                                                  MPI_FLOAT, MPI_SUM, comm_, &r),
                              "MPI_Ireduce_scatter"));
  MLA_RETURN_IF_ERROR(Complete(&r, "MPI_Ireduce_scatter"));
  // In place, MPI leaves this rank's result at the front of the buffer; move
  // it to where the shard lives in the flat buffer.
  const ElementRange shard = ShardRange(total, rank_, size_);
  if (shard.begin != 0 && shard.size() > 0)
    std::memmove(data.data() + shard.begin, data.data(), shard.size() * sizeof(float));
  if (op == ReduceOp::kAverage)
    ScaleInPlace(data.subspan(shard.begin, shard.size()), 1.0f / static_cast<float>(size_));
  return absl::OkStatus();
}

absl::Status MpiCommunicator::AllGather(absl::Span<float> data) {
  const int64_t total = static_cast<int64_t>(data.size());
  if (total == 0) return absl::OkStatus();
  MLA_RETURN_IF_ERROR(ComputeShardCounts(total));
  MPI_Request r = MPI_REQUEST_NULL;
  MLA_RETURN_IF_ERROR(MpiCall(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data.data(),
                                              counts_.data(), displs_.data(), MPI_FLOAT, comm_, &r),
                              "MPI_Iallgatherv"));
  return Complete(&r, "MPI_Iallgatherv");
}

absl::Status MpiCommunicator::Broadcast(absl::Span<uint8_t> data, int root) {
  if (root < 0 || root >= size_)
    return absl::InvalidArgumentError(
        absl::StrCat("Broadcast: root ", root, " not in [0, ", size_, ")"));
  if (data.empty()) return absl::OkStatus();
  MLA_ASSIGN_OR_RETURN(int n, MpiCount(data.size(), "MPI_Bcast"));
  MPI_Request r = MPI_REQUEST_NULL;
  MLA_RETURN_IF_ERROR(MpiCall(MPI_Ibcast(data.data(), n, MPI_BYTE, root, comm_, &r), "MPI_Ibcast"));
  return Complete(&r, "MPI_Ibcast");
}

absl::Status MpiCommunicator::Barrier() {
  MPI_Request r = MPI_REQUEST_NULL;
  MLA_RETURN_IF_ERROR(MpiCall(MPI_Ibarrier(comm_, &r), "MPI_Ibarrier"));
  return Complete(&r, "MPI_Ibarrier");
}

}  // namespace mla

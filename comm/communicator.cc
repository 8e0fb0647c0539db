#include "comm/communicator.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "comm/local_communicator.h"
#include "comm/mpi_communicator.h"
#include "comm/scale.h"
#include "glog/logging.h"

namespace mla {

ElementRange ShardRange(int64_t total, int rank, int size) {
  CHECK_GE(total, 0);
  CHECK_GT(size, 0);
  CHECK(rank >= 0 && rank < size) << "rank " << rank << " of " << size;
  const int64_t blocks = (total + kShardAlignment - 1) / kShardAlignment;
  const int64_t base = blocks / size;
  const int64_t extra = blocks % size;
  auto block_start = [&](int64_t r) { return r * base + std::min<int64_t>(r, extra); };
  return {std::min(total, block_start(rank) * kShardAlignment),
          std::min(total, block_start(rank + 1) * kShardAlignment)};
}

CommRequest& CommRequest::operator=(CommRequest&& other) noexcept {
  if (this != &other) {
    if (pending()) {
      absl::Status s = Wait();
      LOG_IF(ERROR, !s.ok()) << "non-blocking collective replaced while pending: " << s;
    }
    owner_ = std::exchange(other.owner_, nullptr);
    handle_ = other.handle_;
    data_ = other.data_;
    count_ = other.count_;
    scale_ = other.scale_;
  }
  return *this;
}

CommRequest::~CommRequest() {
  if (pending()) {
    absl::Status s = Wait();
    LOG_IF(ERROR, !s.ok()) << "non-blocking collective abandoned: " << s;
  }
}

void CommRequest::Complete() {
  owner_ = nullptr;
  ScaleInPlace(absl::MakeSpan(data_, count_), scale_);
}

absl::Status CommRequest::Wait() {
  if (!pending()) return absl::OkStatus();
  absl::Status s = owner_->WaitRequest(&handle_);
  if (!s.ok()) {
    owner_ = nullptr;  // MPI has released the request; the buffer is garbage.
    return s;
  }
  Complete();
  return absl::OkStatus();
}

absl::StatusOr<bool> CommRequest::Test() {
  if (!pending()) return true;
  absl::StatusOr<bool> done = owner_->TestRequest(&handle_);
  if (!done.ok()) {
    owner_ = nullptr;
    return done.status();
  }
  if (*done) Complete();
  return *done;
}

absl::Status AgreeOnStatus(Communicator& comm, const absl::Status& local) {
  // Lowest failing rank wins; `size` means nobody failed.
  int64_t failing = local.ok() ? comm.size() : comm.rank();
  MLA_RETURN_IF_ERROR(comm.AllReduce(absl::MakeSpan(&failing, 1), ReduceOp::kMin));
  if (failing == comm.size()) return absl::OkStatus();
  const int root = static_cast<int>(failing);
  const std::string own = std::string(local.message());
  // Header: code and message length, then the message bytes.
  int64_t header[2] = {static_cast<int64_t>(local.code()), static_cast<int64_t>(own.size())};
  MLA_RETURN_IF_ERROR(comm.Broadcast(
      absl::MakeSpan(reinterpret_cast<uint8_t*>(header), sizeof(header)), root));
  std::string message(static_cast<size_t>(header[1]), '\0');
  if (comm.rank() == root) message = own;
  MLA_RETURN_IF_ERROR(comm.Broadcast(
      absl::MakeSpan(reinterpret_cast<uint8_t*>(message.data()), message.size()), root));
  return absl::Status(static_cast<absl::StatusCode>(header[0]),
                      absl::StrCat("rank ", root, ": ", message));
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateCommunicator(double collective_timeout_s) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) return std::unique_ptr<Communicator>(std::make_unique<LocalCommunicator>());
  MLA_ASSIGN_OR_RETURN(std::unique_ptr<MpiCommunicator> mpi, MpiCommunicator::Create(collective_timeout_s));
  return std::unique_ptr<Communicator>(std::move(mpi));
}

}  // namespace mla

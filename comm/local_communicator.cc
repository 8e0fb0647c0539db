#include "comm/local_communicator.h"

#include "absl/strings/str_cat.h"

namespace mla {
namespace {

absl::Status CheckIntegerOp(ReduceOp op) {
  if (op == ReduceOp::kAverage)
    return absl::InvalidArgumentError("AllReduce: kAverage is not defined for int64");
  return absl::OkStatus();
}

absl::Status CheckSumOrAverage(ReduceOp op, absl::string_view call) {
  if (op != ReduceOp::kSum && op != ReduceOp::kAverage)
    return absl::InvalidArgumentError(absl::StrCat(call, ": only kSum and kAverage are supported"));
  return absl::OkStatus();
}

}  // namespace

absl::Status LocalCommunicator::AllReduce(absl::Span<float>, ReduceOp) { return absl::OkStatus(); }
absl::Status LocalCommunicator::AllReduce(absl::Span<double>, ReduceOp) {
  return absl::OkStatus();
}
absl::Status LocalCommunicator::AllReduce(absl::Span<int64_t>, ReduceOp op) {
  return CheckIntegerOp(op);
}

absl::StatusOr<CommRequest> LocalCommunicator::StartAllReduce(absl::Span<float>, ReduceOp op) {
  absl::Status s = CheckSumOrAverage(op, "StartAllReduce");
  if (!s.ok()) return s;
  return CommRequest();
}

absl::Status LocalCommunicator::ReduceScatter(absl::Span<float>, ReduceOp op) {
  return CheckSumOrAverage(op, "ReduceScatter");
}

absl::Status LocalCommunicator::AllGather(absl::Span<float>) { return absl::OkStatus(); }

absl::Status LocalCommunicator::Broadcast(absl::Span<uint8_t>, int root) {
  if (root != 0)
    return absl::InvalidArgumentError(absl::StrCat("Broadcast: root ", root, " not in [0, 1)"));
  return absl::OkStatus();
}

// A LocalCommunicator never hands out pending requests.
absl::Status LocalCommunicator::WaitRequest(uint64_t*) { return absl::OkStatus(); }
absl::StatusOr<bool> LocalCommunicator::TestRequest(uint64_t*) { return true; }

}  // namespace mla

#include "comm/nccl_bootstrap.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace mla {
namespace {
constexpr size_t kIdentityBytes = 64;  // 63 characters and a terminating zero
}  // namespace

absl::StatusOr<int> ChooseLocalDevice(int local_rank, int local_size, int device_count) {
  if (device_count < 1) return absl::FailedPreconditionError("no CUDA device visible to this rank");
  if (local_rank < 0 || local_rank >= local_size)
    return absl::InvalidArgumentError(
        absl::StrCat("local rank ", local_rank, " is outside [0, ", local_size, ")"));
  if (local_size <= device_count) return local_rank;
  if (device_count == 1) return 0;
  return absl::FailedPreconditionError(absl::StrCat(
      local_size, " ranks run on this node but only ", device_count,
      " CUDA devices are visible: start at most one rank per GPU"));
}

absl::Status CheckDistinctDevices(Communicator& comm, absl::string_view identity) {
  std::array<uint8_t, kIdentityBytes> mine{};
  std::memcpy(mine.data(), identity.data(), std::min(identity.size(), kIdentityBytes - 1));
  // Every rank learns every identity, one broadcast per rank (a few bytes
  // each, once per job).
  absl::Status local = absl::OkStatus();
  for (int root = 0; root < comm.size(); ++root) {
    std::array<uint8_t, kIdentityBytes> other = mine;
    if (absl::Status s = comm.Broadcast(absl::MakeSpan(other), root); !s.ok()) return s;
    if (root != comm.rank() && other == mine && local.ok())
      local = absl::FailedPreconditionError(
          absl::StrCat("ranks ", std::min(root, comm.rank()), " and ",
                       std::max(root, comm.rank()), " would both drive GPU ",
                       reinterpret_cast<const char*>(mine.data()),
                       ": give each rank its own device"));
  }
  return AgreeOnStatus(comm, local);
}

absl::StatusOr<NcclUniqueIdBytes> ExchangeUniqueId(
    Communicator& comm, const std::function<absl::StatusOr<NcclUniqueIdBytes>()>& generate) {
  NcclUniqueIdBytes id{};
  absl::Status local = absl::OkStatus();
  if (comm.rank() == 0) {
    absl::StatusOr<NcclUniqueIdBytes> made = generate();
    if (made.ok()) {
      id = *made;
    } else {
      local = made.status();
    }
  }
  if (absl::Status s = AgreeOnStatus(comm, local); !s.ok()) return s;
  if (absl::Status s = comm.Broadcast(absl::MakeSpan(id), 0); !s.ok()) return s;
  return id;
}

}  // namespace mla

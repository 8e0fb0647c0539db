#include "checkpoint/format.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mla::ckpt {

std::string ConfigValueToString(const ConfigValue& value) {
  if (const auto* i = std::get_if<int64_t>(&value)) return absl::StrCat(*i);
  if (const auto* d = std::get_if<double>(&value)) return absl::StrFormat("%.17g", *d);
  if (const auto* b = std::get_if<bool>(&value)) return *b ? "true" : "false";
  return std::get<std::string>(value);
}

int64_t TensorSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::string_view FlatBufferGroup(FlatBuffer which) {
  switch (which) {
    case FlatBuffer::kParams: return kModelGroup;
    case FlatBuffer::kAdamM: return kAdamMGroup;
    case FlatBuffer::kAdamV: return kAdamVGroup;
  }
  return kModelGroup;
}

FlatRange EvenShard(int64_t total, int rank, int world) {
  const int64_t base = total / world, extra = total % world;
  FlatRange r;
  r.lo = rank * base + std::min<int64_t>(rank, extra);
  r.hi = r.lo + base + (rank < extra ? 1 : 0);
  return r;
}

}  // namespace mla::ckpt

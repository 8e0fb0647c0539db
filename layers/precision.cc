#include "layers/precision.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mla {

absl::string_view PrecisionName(Precision precision) {
  return precision == Precision::kFp32 ? "fp32" : "bf16";
}

absl::StatusOr<Precision> ParsePrecision(absl::string_view name) {
  if (name == "fp32") return Precision::kFp32;
  if (name == "bf16") return Precision::kBf16;
  return absl::InvalidArgumentError(
      absl::StrCat("precision=", name, ": must be fp32 or bf16"));
}

}  // namespace mla

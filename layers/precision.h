#pragma once
// Training precision, chosen by `--precision`:
//   fp32  every GEMM operand, output and parameter in float.
//   bf16  mixed precision: GEMM operands (weights and activations) rounded to
//         bfloat16, products accumulated in fp32, outputs in fp32; fp32 master
//         weights, gradients and AdamW moments (layers/cuda/cuda_kernels.h,
//         docs/cuda.md "Mixed precision (bf16)").
// Host code with no CUDA dependency, so the trainer and the memory plan use it
// on every machine. Pure functions; thread safe.
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mla {

enum class Precision { kFp32, kBf16 };

// "fp32" or "bf16".
absl::string_view PrecisionName(Precision precision);
// Parses "fp32" or "bf16"; anything else is InvalidArgument naming the value.
absl::StatusOr<Precision> ParsePrecision(absl::string_view name);

}  // namespace mla

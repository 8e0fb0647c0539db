// CreateCudaTrainingDevice for builds without the CUDA training path: the
// build defines MLA_CUDA_TRAINING_MISSING as the reason (no nvcc, or no NCCL).
#include "absl/strings/str_cat.h"
#include "runtime/training_device.h"

namespace mla {

absl::StatusOr<std::unique_ptr<TrainingDevice>> CreateCudaTrainingDevice(Communicator*, Precision) {
  return absl::UnimplementedError(absl::StrCat("--device=cuda: ", MLA_CUDA_TRAINING_MISSING));
}

}  // namespace mla

#pragma once
// The one place a program turns --device and --precision into kernels, and
// the one place that knows whether this build has CUDA. mla-train and
// mla-bench reach it through CreateTrainingDevice (runtime/training_device.h),
// mla-eval directly. Devices:
//
//   cpu   CpuKernels (oneDNN + OpenMP), fp32 only; the host, no device choice.
//   cuda  CudaKernels (fp32, or bf16 GEMM operands), present in builds with
//         the CUDA backend; trains where the build also has NCCL.
//
// Every device other than cpu is a DeviceBackend in a registry by name.
// CreateKernels counts the backend's devices and applies ChooseLocalDevice
// (comm/nccl_bootstrap.h), the rule NCCL's start-up uses, to the node-local
// rank: rank r of a node gets device r, the same for every program. "cuda"
// is registered by create_kernels.cc when the build has CUDA (the only
// CUDA-or-not decision of the device choice); RegisterDeviceBackend adds
// others (tests register a fake device and check the choice under mpirun).
//
// Failure, each message prefixed "--device=<name>: ": InvalidArgument for an
// unknown device or a precision the device lacks; FailedPrecondition saying
// the build has no CUDA for cuda in such a build, and "this build has CUDA
// but no GPU is usable here (<the CUDA error>)" in a CUDA build without a
// GPU; otherwise the backend's error or the rank/device-count error of
// ChooseLocalDevice.
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "layers/kernels.h"
#include "layers/precision.h"

namespace mla {

class Communicator;
class TrainingDevice;

struct DeviceBackend {
  // Devices of this kind the process sees; an error when they cannot be
  // counted.
  std::function<absl::StatusOr<int>()> count;
  // Kernels on device `index` (in [0, count)), which becomes the calling
  // thread's current device.
  std::function<absl::StatusOr<std::unique_ptr<Kernels>>(int index, Precision precision)> create;
  // Training on this device kind (runtime/training_device.h), collective over
  // the host communicator; null where the build cannot train on it, and then
  // `training_missing` says why.
  std::function<absl::StatusOr<std::unique_ptr<TrainingDevice>>(Communicator* host_comm,
                                                                Precision precision)>
      create_training;
  std::string training_missing;
};

// Adds (or replaces) the backend of `name` ("cpu" cannot be replaced).
// Call before any CreateKernels of that name; not thread safe.
void RegisterDeviceBackend(std::string name, DeviceBackend backend);

// The backend of `device` ("cpu" has none): InvalidArgument or
// FailedPrecondition as above when there is none.
absl::StatusOr<const DeviceBackend*> FindDeviceBackend(absl::string_view device);

// Kernels on the device of node-local rank `local_rank` of `local_size`.
absl::StatusOr<std::unique_ptr<Kernels>> CreateKernels(absl::string_view device,
                                                       Precision precision, int local_rank = 0,
                                                       int local_size = 1);
// The same for the calling rank of `comm` (its local_rank() and local_size()).
absl::StatusOr<std::unique_ptr<Kernels>> CreateKernels(absl::string_view device,
                                                       Precision precision,
                                                       const Communicator& comm);

}  // namespace mla

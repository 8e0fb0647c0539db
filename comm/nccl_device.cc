#include "comm/nccl_device.h"

#include <cuda_runtime.h>

#include "base/cuda_status.h"
#include "base/status_macros.h"
#include "comm/nccl_bootstrap.h"

namespace mla {

absl::StatusOr<int> CudaDeviceCount() {
  int count = 0;
  MLA_RETURN_IF_ERROR(cuda::CudaStatus(cudaGetDeviceCount(&count), "cudaGetDeviceCount"));
  return count;
}

absl::Status UseCudaDevice(int device) {
  return cuda::CudaStatus(cudaSetDevice(device), "cudaSetDevice");
}

absl::StatusOr<int> SelectLocalCudaDevice(int local_rank, int local_size) {
  MLA_ASSIGN_OR_RETURN(int count, CudaDeviceCount());
  MLA_ASSIGN_OR_RETURN(int device, ChooseLocalDevice(local_rank, local_size, count));
  MLA_RETURN_IF_ERROR(UseCudaDevice(device));
  return device;
}

}  // namespace mla

// mla-gemm-peak: the GEMM ceilings the device check (scripts/gpu_check.py)
// states MFU against, measured in the same run as the training it rates.
//
// Times y[n,n] = x[n,n]·w[n,n]ᵀ on random operands (never zeros: they can
// run faster than real data and hide unwritten outputs):
//   fp32  the --precision=fp32 product: fp32 operands, CUBLAS_COMPUTE_32F
//         (no TF32), through the LtMatmul plans CudaKernels uses;
//   bf16  the --precision=bf16 product: bfloat16 operands cast once before
//         timing, fp32 accumulation and output, same plans.
// Each is warmed up, then timed --repeats times with CUDA events around the
// product alone; the median counts. --device=cpu times CpuKernels'
// LinearForward (oneDNN) with a host clock and reports bf16 as unsupported,
// so the check's dry run has the same output. Prints one JSON line:
//   {"device":..., "n":..., "fp32_tflops":..., "bf16_tflops":... or null,
//    "fp32_ms":..., "bf16_ms":...}
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "base/cli.h"
#include "base/status_macros.h"
#include "layers/cpu/cpu_kernels.h"
#include "layers/cuda/bf16_cast_launch.h"
#include "layers/cuda/cuda_check.h"
#include "layers/cuda/device_buffer.h"
#include "layers/cuda/lt_matmul.h"

ABSL_FLAG(std::string, device, "cuda", "cuda (cuBLASLt fp32 and bf16) or cpu (oneDNN fp32 only).");
ABSL_FLAG(int64_t, n, 8192, "Square GEMM size: 2·n³ floating-point operations per product.");
ABSL_FLAG(int, warmup, 3, "Untimed products before timing.");
ABSL_FLAG(int, repeats, 10, "Timed products; the median counts.");

namespace mla {
namespace {

struct Timing {
  double ms = 0;  // median of the timed products
  double tflops = 0;
};

Timing FromSamples(std::vector<double> ms, int64_t n) {
  std::sort(ms.begin(), ms.end());
  Timing t;
  t.ms = ms[ms.size() / 2];
  t.tflops = 2.0 * n * n * n / (t.ms * 1e-3) / 1e12;
  return t;
}

std::vector<float> RandomMatrix(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> m(static_cast<size_t>(n * n));
  for (float& v : m) v = u(rng);
  return m;
}

absl::StatusOr<Timing> TimeCpu(int64_t n, int warmup, int repeats) {
  CpuKernels cpu;
  const std::vector<float> x = RandomMatrix(n, 1), w = RandomMatrix(n, 2);
  std::vector<float> y(static_cast<size_t>(n * n));
  std::vector<double> ms;
  for (int i = 0; i < warmup + repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    cpu.LinearForward(x.data(), w.data(), nullptr, y.data(), n, n, n, Epilogue::kNone, false);
    const double dt =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (i >= warmup) ms.push_back(dt);
  }
  return FromSamples(std::move(ms), n);
}

absl::StatusOr<Timing> TimeCuda(cuda::LtMatmul& lt, cudaStream_t stream, cuda::MatmulType type,
                                int64_t n, int warmup, int repeats) {
  using cuda::CudaStatus;
  MLA_ASSIGN_OR_RETURN(auto x32, cuda::DeviceBuffer<float>::Allocate(n * n));
  MLA_ASSIGN_OR_RETURN(auto w32, cuda::DeviceBuffer<float>::Allocate(n * n));
  MLA_ASSIGN_OR_RETURN(auto y, cuda::DeviceBuffer<float>::Allocate(n * n));
  const size_t bytes = static_cast<size_t>(n * n) * sizeof(float);
  MLA_RETURN_IF_ERROR(CudaStatus(
      cudaMemcpy(x32.data(), RandomMatrix(n, 1).data(), bytes, cudaMemcpyHostToDevice), "cudaMemcpy"));
  MLA_RETURN_IF_ERROR(CudaStatus(
      cudaMemcpy(w32.data(), RandomMatrix(n, 2).data(), bytes, cudaMemcpyHostToDevice), "cudaMemcpy"));
  const void* x = x32.data();
  const void* w = w32.data();
  cuda::DeviceBuffer<uint16_t> x16, w16;
  if (type == cuda::MatmulType::kBF16) {
    MLA_ASSIGN_OR_RETURN(x16, cuda::DeviceBuffer<uint16_t>::Allocate(n * n));
    MLA_ASSIGN_OR_RETURN(w16, cuda::DeviceBuffer<uint16_t>::Allocate(n * n));
    MLA_RETURN_IF_ERROR(CudaStatus(
        static_cast<cudaError_t>(cuda::launch::CastToBf16(x32.data(), x16.data(), n * n, stream)),
        "CastToBf16Kernel"));
    MLA_RETURN_IF_ERROR(CudaStatus(
        static_cast<cudaError_t>(cuda::launch::CastToBf16(w32.data(), w16.data(), n * n, stream)),
        "CastToBf16Kernel"));
    x = x16.data();
    w = w16.data();
  }
  cuda::MatmulKey key = cuda::LinearForwardKey(n, n, n, cuda::MatmulEpilogue::kDefault, false, x,
                                               w, nullptr, y.data());
  key.type = type;
  cuda::MatmulArgs args;
  args.a = w;
  args.b = x;
  args.c = y.data();
  cudaEvent_t start = nullptr, stop = nullptr;
  MLA_RETURN_IF_ERROR(CudaStatus(cudaEventCreate(&start), "cudaEventCreate"));
  MLA_RETURN_IF_ERROR(CudaStatus(cudaEventCreate(&stop), "cudaEventCreate"));
  std::vector<double> ms;
  absl::Status status = absl::OkStatus();
  for (int i = 0; i < warmup + repeats && status.ok(); ++i) {
    cudaEventRecord(start, stream);
    absl::StatusOr<bool> ran = lt.Run(key, args);
    cudaEventRecord(stop, stream);
    status = ran.status();
    if (status.ok()) status = CudaStatus(cudaEventSynchronize(stop), "cudaEventSynchronize");
    if (status.ok()) status = CudaStatus(cudaGetLastError(), "GEMM launch");
    float dt = 0;
    if (status.ok()) status = CudaStatus(cudaEventElapsedTime(&dt, start, stop), "cudaEventElapsedTime");
    if (status.ok() && i >= warmup) ms.push_back(dt);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  MLA_RETURN_IF_ERROR(status);
  return FromSamples(std::move(ms), n);
}

std::string Json(const absl::StatusOr<Timing>& t, const char* name) {
  if (!t.ok())
    return absl::StrCat("\"", name, "_tflops\":null,\"", name, "_ms\":null,\"", name,
                        "_error\":\"", absl::StrReplaceAll(t.status().message(), {{"\"", "'"}}),
                        "\"");
  return absl::StrCat("\"", name, "_tflops\":", t->tflops, ",\"", name, "_ms\":", t->ms);
}

absl::Status Run() {
  const std::string device = absl::GetFlag(FLAGS_device);
  const int64_t n = absl::GetFlag(FLAGS_n);
  const int warmup = absl::GetFlag(FLAGS_warmup), repeats = absl::GetFlag(FLAGS_repeats);
  if (n < 1 || warmup < 0 || repeats < 1)
    return absl::InvalidArgumentError("--n and --repeats must be >= 1, --warmup >= 0");
  absl::StatusOr<Timing> fp32, bf16;
  if (device == "cpu") {
    fp32 = TimeCpu(n, warmup, repeats);
    bf16 = absl::UnimplementedError("bf16 GEMMs run on the GPU only");
  } else if (device == "cuda") {
    cudaStream_t stream = nullptr;
    MLA_RETURN_IF_ERROR(cuda::CudaStatus(cudaStreamCreate(&stream), "cudaStreamCreate"));
    MLA_ASSIGN_OR_RETURN(std::unique_ptr<cuda::LtMatmul> lt, cuda::LtMatmul::Create(stream));
    fp32 = TimeCuda(*lt, stream, cuda::MatmulType::kF32, n, warmup, repeats);
    bf16 = TimeCuda(*lt, stream, cuda::MatmulType::kBF16, n, warmup, repeats);
    lt.reset();
    cudaStreamDestroy(stream);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown --device '", device, "'"));
  }
  std::printf("{\"device\":\"%s\",\"n\":%lld,%s,%s}\n", device.c_str(), static_cast<long long>(n),
              Json(fp32, "fp32").c_str(), Json(bf16, "bf16").c_str());
  return fp32.status();
}

}  // namespace
}  // namespace mla

int main(int argc, char** argv) {
  mla::ParseCommandLineWithUsage(
      argc, argv,
      "Measures the fp32 and bf16 GEMM ceilings (TFLOP/s, median of timed square products).\n"
      "  mla-gemm-peak [--device=cuda|cpu] [--n=8192] [--warmup=3] [--repeats=10]");
  return mla::ExitStatus("mla-gemm-peak", mla::Run());
}

#pragma once
// GptModel: the GPT of docs/model.md assembled from layers/ on one Kernels
// implementation. Owns one contiguous parameter buffer and one gradient buffer
// (same layout: runtime/parameter_layout.h) and the activations of the last
// forward pass, sized once by Reserve. Every buffer lives in the kernels'
// memory (DeviceArray): params(), grads() and logits() are host pointers on
// CpuKernels and device pointers on CudaKernels; host code that needs values
// uses the *ToHost / LoadParamsFromHost accessors, which copy only when the
// memory is not host memory.
//
// Token ids are host memory in every call: on a device they are uploaded per
// call into the model's int32 buffers; on the host they are used in place.
//
// The same blocks serve the training forward and the cached calls of the
// decoder (prefill and single-token decode, runtime/decoder.h); weights are
// reached through the typed views of the parameter layout
// (runtime/parameter_layout.h).
//
// Training use, per micro-batch:
//   loss = model.Forward(inputs, targets, B, T, grad_scale);  // grad_scale > 0
//   model.Backward(inputs, B, T);                              // grads +=
// Evaluation: Forward(..., grad_scale = 0) keeps the logits readable.
// Not thread safe; calls run on the kernels' device.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "layers/device_array.h"
#include "layers/kernels.h"
#include "layers/transformer_block.h"
#include "runtime/kv_cache.h"
#include "runtime/model_config.h"
#include "runtime/parameter_layout.h"

namespace mla {

class GptModel {
 public:
  // Validates the config; `kernels` must outlive the model.
  static absl::StatusOr<std::unique_ptr<GptModel>> Create(const ModelConfig& config,
                                                          Kernels* kernels);
  GptModel(const GptModel&) = delete;
  GptModel& operator=(const GptModel&) = delete;

  const ModelConfig& config() const { return config_; }
  // The kernels the model was created on (its parameters are their memory).
  Kernels* kernels() const { return kernels_; }
  const ParameterLayout& layout() const { return layout_; }
  int64_t num_params() const { return layout_.total; }
  // The buffers themselves, in the kernels' memory.
  float* params() { return params_.data(); }
  const float* params() const { return params_.data(); }
  float* grads() { return grads_.data(); }
  const float* grads() const { return grads_.data(); }

  // Host copies (waiting for earlier calls) and host → model copies.
  std::vector<float> ParamsToHost() const { return params_.ToHost(); }
  std::vector<float> GradsToHost() const { return grads_.ToHost(); }
  // Writes src[0, n) into parameters [offset, offset + n).
  void LoadParamsFromHost(const float* src, int64_t offset, int64_t n) {
    params_.CopyFromHost(src, n, offset);
  }

  // GPT-2 initialisation (docs/model.md), a deterministic function of seed
  // (computed in host memory, then copied when the kernels' memory is not).
  void InitParameters(uint64_t seed);
  void ZeroGrads();

  // Sizes activations for up to B sequences of up to T tokens (T ≤ context).
  void Reserve(int B, int T);
  // The bytes Reserve(B, T) allocates on a fresh model of `config` in a
  // device's memory (token ids included), computed by the same sizing calls
  // without allocating (runtime/memory_plan.h).
  static int64_t ActivationBytes(const ModelConfig& config, int B, int T);
  // Sizes the buffers of cached calls of up to `rows` rows in up to
  // `segments` segments.
  void ReserveCached(int64_t rows, int segments);

  // Runs the model on inputs [B, T]. With targets, returns the mean
  // cross-entropy; with grad_scale > 0 the logits are replaced by
  // dLoss_sum/dlogits · grad_scale, ready for Backward (use 1/(B·T·accum)).
  double Forward(const int32_t* inputs, const int32_t* targets, int B, int T,
                 float grad_scale = 0.0f);
  // Accumulates parameter gradients of the last Forward (which had grad_scale > 0).
  // When given, grads_ready(begin, end) is called as soon as the gradients of
  // the buffer range [begin, end) are final (head and ln_f, each block from
  // the last, then the embeddings), so data parallelism can start reducing
  // them while backward goes on. The ranges partition the buffer.
  void Backward(const int32_t* inputs, int B, int T,
                const std::function<void(int64_t, int64_t)>& grads_ready = {});

  // Cached call (prefill and decode; runtime/decoder.h schedules them): the
  // rows of `batch`, tokens [M] in the kernels' memory, go through every
  // block at their per-row positions; block l reads and appends layer l of
  // `cache` (MLA kinds read latents as `mode` says). Writes logits into
  // cached_logits(): [M, V] with all_logits, else the last row of each
  // segment [S, V]. Allocates nothing after ReserveCached(≥ M, ≥ S). It
  // reuses training activations, so it must not come between a training
  // Forward and its Backward.
  void Forward(const int32_t* tokens, const DecodeBatch& batch, KvCache& cache, DecodeMode mode,
               bool all_logits);
  // Logits of the last cached call (kernels' memory; fixed by ReserveCached).
  const float* cached_logits() const { return cached_logits_.data(); }

  // Logits [B·T, V] of the last Forward without gradient (kernels' memory).
  const float* logits() const { return logits_.data(); }
  // The same B·T·V values copied to the host.
  std::vector<float> LogitsToHost() const;

 private:
  // With null kernels the model holds no memory and is only sized.
  GptModel(const ModelConfig& config, Kernels* kernels);
  void SizeActivations(int B, int T, ActivationSizer& sizer);
  // `tokens` itself on host kernels; else a device copy in `staging`.
  const int32_t* TokensOnDevice(const int32_t* tokens, int64_t n, DeviceArray<int32_t>* staging);

  ModelConfig config_;
  Kernels* kernels_;
  ParameterLayout layout_;
  DeviceArray<float> params_, grads_;
  std::vector<TransformerBlock> blocks_;
  BlockScratch scratch_;
  std::vector<int64_t> block_begin_;  // offset of each block's first tensor, then ln_f
  int reserved_rows_ = 0, reserved_B_ = 0, reserved_T_ = 0;
  int64_t last_rows_ = 0;  // B·T of the last Forward
  std::vector<DeviceArray<float>> residual_;  // L+1 buffers [M, C]
  DeviceArray<float> lnf_, lnf_mean_, lnf_rstd_, logits_, d_lnf_, d_res_;
  DeviceArray<int32_t> inputs_dev_, targets_dev_;  // device copies of the token ids
  // Cached calls: the residual stream [rows, C], each segment's last row
  // [segments, C], logits [rows, V].
  DeviceArray<float> cached_x_, cached_last_, cached_logits_;
};

}  // namespace mla

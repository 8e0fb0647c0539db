#pragma once
// KvCache: the per-layer attention cache of the KV-cached decoder, allocated
// once for `slots` sequences of up to `max_len` tokens and never resized.
//
// What one token stores per layer (values, fp32 here):
//   mha, mha_rope   key [C] and value [C]                    2·C
//   mla             the latent c_kv [R] (normalised when latent_norm)   R
//   mla_rope        c_kv [R] and the shared rotary key k_r [P]          R + P
// MLA never stores per-head keys or values: the attention layer either absorbs W_uk and
// W_uv into the query and output (layers/attention.h) or expands them on the fly.
//
// Layout: for each layer and part, one block [slots, max_len, width]; a slot's
// rows for positions 0 … length−1 are contiguous, so attention over a slot is
// one strided matrix (cache_len = max_len positions per slot in the kernel
// interface's decode calls, layers/kernels.h).
// Device: the blocks are DeviceArrays of the given kernels (GPU memory for
// CudaKernels): Row/Part return that memory, readable from the host only when
// kernels->is_host(). The lengths are host-side bookkeeping.
// Thread safety: none. Misuse (slot or position out of range) is a CHECK.
#include <cstdint>
#include <vector>

#include "layers/attention.h"
#include "layers/device_array.h"
#include "layers/kernels.h"
#include "runtime/model_config.h"

namespace mla {

// The two parts a token writes per layer: (key, value) for MHA kinds,
// (latent, rotary key) for MLA kinds. kRopeKey has width 0 for plain mla.
enum class KvPart { kKey, kValue, kLatent, kRopeKey };

struct KvCacheLayout {
  bool latent = false;  // MLA kinds
  int first_width = 0;  // key width C, or latent rank R
  int second_width = 0; // value width C, or rotary key width P (0 for mla)
  int64_t values_per_token_per_layer() const { return first_width + second_width; }
};

KvCacheLayout KvCacheLayoutFor(const ModelConfig& config);

class KvCache {
 public:
  // Zero-filled blocks in `kernels`' memory; the kernels must outlive the cache.
  KvCache(const ModelConfig& config, int slots, int max_len, Kernels* kernels);
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  const KvCacheLayout& layout() const { return layout_; }
  int slots() const { return slots_; }
  int max_len() const { return max_len_; }
  int layers() const { return layers_; }
  int width(KvPart part) const;

  // Row `pos` of a slot's part in a layer; rows of one slot are contiguous
  // with stride width(part).
  float* Row(int layer, int slot, KvPart part, int pos);
  const float* Row(int layer, int slot, KvPart part, int pos) const;
  // The whole block [slots, max_len, width(part)] of a layer's part.
  float* Part(int layer, KvPart part) { return Row(layer, 0, part, 0); }
  const float* Part(int layer, KvPart part) const { return Row(layer, 0, part, 0); }

  // A layer's blocks as the attention layer's cached call reads them.
  LayerCache Layer(int layer);

  // Tokens held by a slot (the next position to be written).
  int length(int slot) const { return lengths_[slot]; }
  void set_length(int slot, int length);
  void Clear(int slot) { set_length(slot, 0); }

  int64_t values_per_token() const { return layers_ * layout_.values_per_token_per_layer(); }
  int64_t bytes_allocated() const;

 private:
  int Index(KvPart part) const;

  KvCacheLayout layout_;
  int layers_, slots_, max_len_;
  std::vector<DeviceArray<float>> parts_;  // [layer * 2 + part] → [slots, max_len, width]
  std::vector<int> lengths_;
};

}  // namespace mla

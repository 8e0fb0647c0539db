#include "runtime/kv_cache.h"

#include "glog/logging.h"

namespace mla {

KvCacheLayout KvCacheLayoutFor(const ModelConfig& c) {
  KvCacheLayout l;
  l.latent = c.is_mla();
  if (l.latent) {
    l.first_width = c.kv_rank;
    l.second_width = c.attention == AttentionKind::kMlaRope ? c.rope_dim : 0;
  } else {
    l.first_width = c.d_model;
    l.second_width = c.d_model;
  }
  return l;
}

KvCache::KvCache(const ModelConfig& config, int slots, int max_len, Kernels* kernels)
    : layout_(KvCacheLayoutFor(config)), layers_(config.n_layer), slots_(slots), max_len_(max_len) {
  CHECK_GT(slots, 0);
  CHECK_GT(max_len, 0);
  CHECK(kernels != nullptr);
  parts_.reserve(2 * layers_);
  for (int l = 0; l < layers_; ++l) {
    parts_.emplace_back(kernels, static_cast<int64_t>(slots) * max_len * layout_.first_width);
    parts_.emplace_back(kernels, static_cast<int64_t>(slots) * max_len * layout_.second_width);
  }
  lengths_.assign(slots, 0);
}

int KvCache::Index(KvPart part) const {
  switch (part) {
    case KvPart::kKey:
    case KvPart::kValue:
      CHECK(!layout_.latent) << "an MLA cache holds latents, not keys/values";
      return part == KvPart::kKey ? 0 : 1;
    case KvPart::kLatent:
    case KvPart::kRopeKey:
      CHECK(layout_.latent) << "an MHA cache holds keys/values, not latents";
      return part == KvPart::kLatent ? 0 : 1;
  }
  return 0;
}

int KvCache::width(KvPart part) const {
  return Index(part) == 0 ? layout_.first_width : layout_.second_width;
}

float* KvCache::Row(int layer, int slot, KvPart part, int pos) {
  return const_cast<float*>(static_cast<const KvCache*>(this)->Row(layer, slot, part, pos));
}

const float* KvCache::Row(int layer, int slot, KvPart part, int pos) const {
  DCHECK(layer >= 0 && layer < layers_);
  DCHECK(slot >= 0 && slot < slots_);
  DCHECK(pos >= 0 && pos < max_len_);
  const int i = Index(part);
  const int64_t w = i == 0 ? layout_.first_width : layout_.second_width;
  return parts_[2 * layer + i].data() + (static_cast<int64_t>(slot) * max_len_ + pos) * w;
}

LayerCache KvCache::Layer(int layer) {
  CHECK(layer >= 0 && layer < layers_) << "layer " << layer;
  LayerCache c;
  c.first = parts_[2 * layer].data();
  c.second = parts_[2 * layer + 1].data();
  c.len = max_len_;
  return c;
}

void KvCache::set_length(int slot, int length) {
  CHECK(slot >= 0 && slot < slots_) << "slot " << slot;
  CHECK(length >= 0 && length <= max_len_) << "length " << length << " > cache " << max_len_;
  lengths_[slot] = length;
}

int64_t KvCache::bytes_allocated() const {
  int64_t n = 0;
  for (const auto& p : parts_) n += p.size();
  return n * static_cast<int64_t>(sizeof(float));
}

}  // namespace mla

#pragma once
// Helpers shared by the model tests: configs of chosen sizes, small configs
// for every attention kind and deterministic random fills.
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "runtime/model_config.h"
#include "runtime/random.h"

namespace mla::testing {

struct NamedConfig {
  std::string name;
  ModelConfig config;
};

// The sizes a test picks for its model; the fields not named keep
// ModelConfig's defaults.
struct ConfigSizes {
  int vocab_size = ModelConfig{}.vocab_size;
  int context_length = ModelConfig{}.context_length;
  int n_layer = ModelConfig{}.n_layer;
  int d_model = ModelConfig{}.d_model;
  int n_head = ModelConfig{}.n_head;
  int kv_rank = ModelConfig{}.kv_rank;
  int rope_dim = ModelConfig{}.rope_dim;
  int mlp_ratio = ModelConfig{}.mlp_ratio;
};

inline ModelConfig MakeConfig(AttentionKind attention, const ConfigSizes& s) {
  ModelConfig c;
  c.attention = attention;
  std::tie(c.vocab_size, c.context_length, c.n_layer, c.d_model, c.n_head) =
      std::tie(s.vocab_size, s.context_length, s.n_layer, s.d_model, s.n_head);
  std::tie(c.kv_rank, c.rope_dim, c.mlp_ratio) = std::tie(s.kv_rank, s.rope_dim, s.mlp_ratio);
  return c;
}

// `base` once per attention kind (mha, mha_rope, mla, mla_rope), named after it.
inline std::vector<NamedConfig> EveryKind(const ModelConfig& base) {
  std::vector<NamedConfig> out;
  for (AttentionKind k : {AttentionKind::kMha, AttentionKind::kMhaRope, AttentionKind::kMla,
                          AttentionKind::kMlaRope}) {
    ModelConfig c = base;
    c.attention = k;
    out.push_back({std::string(AttentionKindName(k)), c});
  }
  return out;
}

// Tiny configs covering every kind and option: plain, query compression,
// latent RMSNorm, untied head.
inline std::vector<NamedConfig> SmallConfigs() {
  const ModelConfig base = MakeConfig(AttentionKind::kMlaRope,
                                      {.vocab_size = 13, .context_length = 8, .n_layer = 2,
                                       .d_model = 16, .n_head = 2, .kv_rank = 8, .rope_dim = 4,
                                       .mlp_ratio = 4});
  std::vector<NamedConfig> out = EveryKind(base);
  ModelConfig q = base;
  q.attention = AttentionKind::kMlaRope;
  q.q_rank = 6;
  q.latent_norm = true;
  out.push_back({"mla_rope_qrank_latentnorm", q});
  ModelConfig m = base;
  m.attention = AttentionKind::kMla;
  m.q_rank = 12;
  m.tied_embeddings = false;
  out.push_back({"mla_qrank_untied", m});
  return out;
}

inline void FillNormal(std::vector<float>& v, uint64_t seed, float stddev, float mean = 0.0f) {
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = mean + stddev * static_cast<float>(NormalAt(seed, 7, i));
}

inline std::vector<int32_t> RandomTokens(int n, int vocab, uint64_t seed) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i)
    t[i] = static_cast<int32_t>(UniformAt(seed, 3, i) * vocab) % vocab;
  return t;
}

// Inputs and next-token targets of B random sequences of T tokens.
struct TokenBatch {
  std::vector<int32_t> in, tg;
};

inline TokenBatch MakeTokenBatch(int vocab, int B, int T, uint64_t seed) {
  const std::vector<int32_t> tok = RandomTokens(B * (T + 1), vocab, seed);
  TokenBatch b;
  for (int r = 0; r < B; ++r)
    for (int t = 0; t < T; ++t) {
      b.in.push_back(tok[r * (T + 1) + t]);
      b.tg.push_back(tok[r * (T + 1) + t + 1]);
    }
  return b;
}

}  // namespace mla::testing

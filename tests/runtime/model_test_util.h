#pragma once
// Helpers shared by the model tests: small configs for every attention kind
// and deterministic random fills.
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/model_config.h"
#include "runtime/random.h"

namespace mla::testing {

struct NamedConfig {
  std::string name;
  ModelConfig config;
};

// Tiny configs covering every kind and option: plain, query compression,
// latent RMSNorm, untied head.
inline std::vector<NamedConfig> SmallConfigs() {
  ModelConfig base;
  base.vocab_size = 13;
  base.context_length = 8;
  base.n_layer = 2;
  base.d_model = 16;
  base.n_head = 2;
  base.kv_rank = 8;
  base.rope_dim = 4;
  base.mlp_ratio = 4;
  std::vector<NamedConfig> out;
  for (AttentionKind k : {AttentionKind::kMha, AttentionKind::kMhaRope, AttentionKind::kMla,
                          AttentionKind::kMlaRope}) {
    ModelConfig c = base;
    c.attention = k;
    out.push_back({std::string(AttentionKindName(k)), c});
  }
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

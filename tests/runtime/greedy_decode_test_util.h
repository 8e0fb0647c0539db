#pragma once
// For the tests that decode two ways in lockstep and compare the logits and
// greedy tokens (bf16_decode_test; the 2-thread decoding test builds the same
// model): a 2-layer model large enough for the threaded small-batch paths, its
// random init scaled up so the logits are far from uniform, a batch-1
// decoder and the greedy token.
#include <algorithm>
#include <memory>
#include <vector>

#include "glog/logging.h"
#include "runtime/decoder.h"
#include "runtime/gpt_model.h"

namespace mla::testing {

inline ModelConfig GreedyTestConfig(AttentionKind attention) {
  ModelConfig c;
  c.attention = attention;
  c.vocab_size = 512;
  c.context_length = 64;
  c.n_layer = 2;
  c.d_model = 128;
  c.n_head = 4;
  c.kv_rank = 64;
  c.rope_dim = 16;
  c.mlp_ratio = 4;
  return c;
}

// InitParameters(seed), then the normal-initialised tensors ×10 (std 0.2
// instead of 0.02): attention far from uniform, logits spread out.
inline void InitScaled(GptModel& model, uint64_t seed) {
  model.InitParameters(seed);
  for (const ParamSpec& s : model.layout().params)
    if (s.init == ParamSpec::Init::kNormal)
      for (int64_t i = 0; i < s.numel; ++i) model.params()[s.offset + i] *= 10.0f;
}

// One slot; prompts of up to max_rows tokens in one call.
inline std::unique_ptr<Decoder> MakeBatch1Decoder(GptModel& model, Kernels& kernels,
                                                  DecodeMode mode, int max_rows) {
  DecoderOptions o;
  o.max_batch = 1;
  o.max_rows = max_rows;
  o.mode = mode;
  auto dec_or = Decoder::Create(model, &kernels, o);
  CHECK(dec_or.ok()) << dec_or.status();
  return std::move(*dec_or);
}

inline int32_t Argmax(const std::vector<float>& l) {
  return static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
}

}  // namespace mla::testing

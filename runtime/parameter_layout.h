#pragma once
// The parameter layout of a model: one size table (BuildParameterLayout) that
// gives every tensor its checkpoint name, shape, offset in the one contiguous
// parameter buffer, weight-decay flag and initialisation, and fills the
// typed per-layer views (ModelWeights: BlockWeights / AttentionWeights of
// layers/) the model reads its weights through. Names, sizes and offsets
// therefore come from the same place; nothing looks a weight up by name.
// The order and names are those of docs/model.md. Pure function of the
// config; no allocation of the tensors themselves.
#include <cstdint>
#include <string>
#include <vector>

#include "layers/transformer_block.h"
#include "runtime/model_config.h"

namespace mla {

struct ParamSpec {
  std::string name;            // checkpoint dataset name, e.g. "blocks.3.attn.w_dkv"
  std::vector<int64_t> shape;  // row-major
  int64_t offset = 0;          // in floats, into the parameter buffer
  int64_t numel = 0;
  bool decay = false;          // AdamW weight decay applies (matrices only)
  enum class Init { kNormal, kZeros, kOnes } init = Init::kNormal;
  float init_std = 0.0f;       // for kNormal
};

// Offsets (floats) of the model-level tensors and each block's views; -1
// where the config has no such tensor. `lm_head` is wte's offset when the
// embeddings are tied.
struct ModelWeights {
  int64_t wte = -1, wpe = -1, ln_f_w = -1, ln_f_b = -1, lm_head = -1;
  std::vector<BlockWeights> blocks;
};

struct ParameterLayout {
  std::vector<ParamSpec> params;  // buffer order
  int64_t total = 0;              // floats in the buffer
  ModelWeights weights;
};

// Layout for a config that passed ValidateModelConfig.
ParameterLayout BuildParameterLayout(const ModelConfig& config);

}  // namespace mla

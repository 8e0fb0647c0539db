#pragma once
// The parameter layout of a model: one size table (BuildParameterLayout) that
// gives every tensor its checkpoint name, shape, offset in the one contiguous
// parameter buffer, weight-decay flag and initialisation, and fills the
// typed per-layer views (ModelWeights: BlockWeights / AttentionWeights of
// layers/) the model reads its weights through. Names, sizes and offsets
// therefore come from the same place; nothing looks a weight up by name.
// The order and names are those of docs/model.md. Pure function of the
// config; no allocation of the tensors themselves.
//
// Alignment: every tensor starts on a 16-byte boundary of the buffer
// (offsets padded to kParamAlignment floats, so GEMM operands and bf16
// shadows are aligned), except attn.w_uv, which directly follows attn.w_uk
// (the two are one [2C, R] matrix). The gaps hold zeros: no tensor, no
// gradient, no decay. The checkpoint keeps the tensors packed
// (packed_offset, contiguous from 0; docs/checkpoint-format.md), so the
// padding is a property of the buffer, not of the file; runtime/
// model_checkpoint.h converts between the two.
#include <cstdint>
#include <string>
#include <vector>

#include "layers/transformer_block.h"
#include "optim/adamw.h"
#include "runtime/model_config.h"

namespace mla {

struct ParamSpec {
  std::string name;            // checkpoint dataset name, e.g. "blocks.3.attn.w_dkv"
  std::vector<int64_t> shape;  // row-major
  int64_t offset = 0;          // in floats, into the parameter buffer (padded)
  int64_t packed_offset = 0;   // in floats, into the checkpoint's packed buffer
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

// Tensor offsets in the buffer are multiples of this many floats (16 bytes).
inline constexpr int64_t kParamAlignment = 4;

struct ParameterLayout {
  std::vector<ParamSpec> params;  // buffer order
  int64_t total = 0;              // floats in the buffer, gaps included
  int64_t packed_total = 0;       // floats of the tensors alone (the model's parameter count)
  ModelWeights weights;
};

// Layout for a config that passed ValidateModelConfig.
ParameterLayout BuildParameterLayout(const ModelConfig& config);

// AdamW's decay segments (optim/adamw.h) tiling the whole buffer: each
// tensor with its decay flag, each gap as a segment without decay.
std::vector<DecaySegment> DecaySegments(const ParameterLayout& layout);

// The packed offset of buffer element `i` (0 ≤ i ≤ total); an element in a
// gap maps to where the next tensor starts.
int64_t PackedOffset(const ParameterLayout& layout, int64_t i);

}  // namespace mla

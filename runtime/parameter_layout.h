#pragma once
// The parameter layout of a model: every tensor's checkpoint name, shape,
// offset in the one contiguous parameter buffer, whether AdamW decays it and
// how it is initialised. The order and names are those of docs/model.md.
// Pure function of the config; no allocation of the tensors themselves.
#include <cstdint>
#include <string>
#include <vector>

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

struct ParameterLayout {
  std::vector<ParamSpec> params;
  int64_t total = 0;  // floats in the buffer
  // Index of `name` in params, or -1.
  int Find(const std::string& name) const;
};

// Layout for a config that passed ValidateModelConfig.
ParameterLayout BuildParameterLayout(const ModelConfig& config);

}  // namespace mla

#pragma once
// The bridge between the model and the checkpoint format: the model config as
// checkpoint /config entries (names as in ModelConfigToString) and back, the
// parameter layout as checkpoint tensor specs, and loading a model (config,
// weights, tokenizer bytes) from a checkpoint path, which is all evaluation
// needs. Failures name the checkpoint and the problem.
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "checkpoint/format.h"
#include "checkpoint/reader.h"
#include "layers/kernels.h"
#include "runtime/gpt_model.h"
#include "runtime/model_config.h"
#include "runtime/parameter_layout.h"

namespace mla {

std::vector<ckpt::ConfigEntry> ModelConfigEntries(const ModelConfig& config);
// Reads the model fields from checkpoint config entries (every field must be
// present with the right type) and validates the result.
absl::StatusOr<ModelConfig> ModelConfigFromEntries(const std::vector<ckpt::ConfigEntry>& entries);
std::vector<ckpt::TensorSpec> TensorSpecs(const ParameterLayout& layout);

struct LoadedModel {
  std::string path;  // the checkpoint file actually read
  ModelConfig config;
  std::unique_ptr<GptModel> model;
  std::string tokenizer_model;  // sentencepiece model bytes
  ckpt::CheckpointHeader header;
};

// `spec` is a checkpoint file, a run directory (its `latest`) or "auto" with
// run_dir. `kernels` must outlive the model.
absl::StatusOr<LoadedModel> LoadModelFromCheckpoint(const std::string& spec,
                                                    const std::string& run_dir, Kernels* kernels);

}  // namespace mla

#pragma once
// The bridge between the model and the checkpoint format: the model config as
// checkpoint /config entries (names as in ModelConfigToString) and back, the
// parameter layout as checkpoint tensor specs, and loading a model (config,
// weights, tokenizer bytes) from a checkpoint path, which is all evaluation
// needs. Failures name the checkpoint and the problem.
//
// Offsets: the checkpoint's flat buffers are packed (tensors contiguous from
// 0); the model's buffers pad each tensor to 16 bytes
// (runtime/parameter_layout.h). PackedSlice and ReadPaddedRange convert a
// range of a padded buffer (parameters, gradients' layout, AdamW moments)
// to and from the file's packed coordinates, so slices of any world size and
// ZeRO-1 shard map to the same file.
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "checkpoint/format.h"
#include "checkpoint/reader.h"
#include "checkpoint/writer.h"
#include "layers/kernels.h"
#include "runtime/gpt_model.h"
#include "runtime/model_config.h"
#include "runtime/parameter_layout.h"

namespace mla {

std::vector<ckpt::ConfigEntry> ModelConfigEntries(const ModelConfig& config);
// Reads the model fields from checkpoint config entries (every field must be
// present with the right type) and validates the result.
absl::StatusOr<ModelConfig> ModelConfigFromEntries(const std::vector<ckpt::ConfigEntry>& entries);
// The layout as the checkpoint names it: packed offsets.
std::vector<ckpt::TensorSpec> TensorSpecs(const ParameterLayout& layout);

// Buffer elements [begin, begin + values.size()) as the checkpoint slice of
// their packed image: the gaps dropped into `staging` (which must outlive
// the slice; untouched when the layout has no gaps, and the slice is then
// `values` itself), at the packed offset of `begin`. Slices of buffer ranges
// that tile [0, total) tile the packed buffer.
ckpt::FlatSlice PackedSlice(const ParameterLayout& layout, int64_t begin,
                            absl::Span<const float> values, std::vector<float>* staging);
// Fills buffer elements [begin, begin + out.size()) from the checkpoint's
// packed buffer `which`; the gaps get zeros.
absl::Status ReadPaddedRange(const ckpt::CheckpointReader& reader, ckpt::FlatBuffer which,
                             const ParameterLayout& layout, int64_t begin, absl::Span<float> out);

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

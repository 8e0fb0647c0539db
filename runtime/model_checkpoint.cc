#include "runtime/model_checkpoint.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "checkpoint/commit.h"
#include "runtime/host_staging.h"

namespace mla {

std::vector<ckpt::ConfigEntry> ModelConfigEntries(const ModelConfig& c) {
  return {
      {"vocab_size", int64_t{c.vocab_size}},
      {"context_length", int64_t{c.context_length}},
      {"n_layer", int64_t{c.n_layer}},
      {"d_model", int64_t{c.d_model}},
      {"n_head", int64_t{c.n_head}},
      {"attention", std::string(AttentionKindName(c.attention))},
      {"kv_rank", int64_t{c.kv_rank}},
      {"rope_dim", int64_t{c.rope_dim}},
      {"q_rank", int64_t{c.q_rank}},
      {"latent_norm", c.latent_norm},
      {"mlp_ratio", int64_t{c.mlp_ratio}},
      {"tied_embeddings", c.tied_embeddings},
      {"rope_theta", static_cast<double>(c.rope_theta)},
  };
}

absl::StatusOr<ModelConfig> ModelConfigFromEntries(const std::vector<ckpt::ConfigEntry>& entries) {
  auto find = [&](const char* key) -> const ckpt::ConfigValue* {
    for (const auto& e : entries)
      if (e.key == key) return &e.value;
    return nullptr;
  };
  ModelConfig c;
  auto get_int = [&](const char* key, int* out) -> absl::Status {
    const ckpt::ConfigValue* v = find(key);
    if (v == nullptr) return absl::NotFoundError(absl::StrCat("config field '", key, "' is missing"));
    const int64_t* i = std::get_if<int64_t>(v);
    if (i == nullptr || *i < INT32_MIN || *i > INT32_MAX)
      return absl::InvalidArgumentError(absl::StrCat("config field '", key, "' is not a 32-bit integer"));
    *out = static_cast<int>(*i);
    return absl::OkStatus();
  };
  auto get_bool = [&](const char* key, bool* out) -> absl::Status {
    const ckpt::ConfigValue* v = find(key);
    if (v == nullptr) return absl::NotFoundError(absl::StrCat("config field '", key, "' is missing"));
    const bool* b = std::get_if<bool>(v);
    if (b == nullptr) return absl::InvalidArgumentError(absl::StrCat("config field '", key, "' is not a boolean"));
    *out = *b;
    return absl::OkStatus();
  };
  MLA_RETURN_IF_ERROR(get_int("vocab_size", &c.vocab_size));
  MLA_RETURN_IF_ERROR(get_int("context_length", &c.context_length));
  MLA_RETURN_IF_ERROR(get_int("n_layer", &c.n_layer));
  MLA_RETURN_IF_ERROR(get_int("d_model", &c.d_model));
  MLA_RETURN_IF_ERROR(get_int("n_head", &c.n_head));
  MLA_RETURN_IF_ERROR(get_int("kv_rank", &c.kv_rank));
  MLA_RETURN_IF_ERROR(get_int("rope_dim", &c.rope_dim));
  MLA_RETURN_IF_ERROR(get_int("q_rank", &c.q_rank));
  MLA_RETURN_IF_ERROR(get_int("mlp_ratio", &c.mlp_ratio));
  MLA_RETURN_IF_ERROR(get_bool("latent_norm", &c.latent_norm));
  MLA_RETURN_IF_ERROR(get_bool("tied_embeddings", &c.tied_embeddings));
  const ckpt::ConfigValue* kind = find("attention");
  if (kind == nullptr || std::get_if<std::string>(kind) == nullptr)
    return absl::InvalidArgumentError("config field 'attention' is missing or not a string");
  MLA_ASSIGN_OR_RETURN(c.attention, ParseAttentionKind(std::get<std::string>(*kind)));
  const ckpt::ConfigValue* theta = find("rope_theta");
  if (theta == nullptr || std::get_if<double>(theta) == nullptr)
    return absl::InvalidArgumentError("config field 'rope_theta' is missing or not a number");
  c.rope_theta = static_cast<float>(std::get<double>(*theta));
  MLA_RETURN_IF_ERROR(ValidateModelConfig(c));
  return c;
}

std::vector<ckpt::TensorSpec> TensorSpecs(const ParameterLayout& layout) {
  std::vector<ckpt::TensorSpec> specs;
  specs.reserve(layout.params.size());
  for (const ParamSpec& p : layout.params) specs.push_back({p.name, p.shape, p.packed_offset});
  return specs;
}

namespace {

// Calls f(buffer_offset, packed_offset, n) for each run of tensor elements in
// buffer range [begin, end).
template <typename F>
void ForEachTensorRun(const ParameterLayout& layout, int64_t begin, int64_t end, F f) {
  for (const ParamSpec& p : layout.params) {
    const int64_t lo = std::max(begin, p.offset), hi = std::min(end, p.offset + p.numel);
    if (lo < hi) f(lo, p.packed_offset + (lo - p.offset), hi - lo);
  }
}

}  // namespace

ckpt::FlatSlice PackedSlice(const ParameterLayout& layout, int64_t begin,
                            absl::Span<const float> values, std::vector<float>* staging) {
  if (layout.total == layout.packed_total) return {begin, values};  // no gaps: the view itself
  const int64_t end = begin + static_cast<int64_t>(values.size());
  staging->clear();
  ForEachTensorRun(layout, begin, end, [&](int64_t at, int64_t, int64_t n) {
    staging->insert(staging->end(), values.begin() + (at - begin), values.begin() + (at - begin + n));
  });
  return {PackedOffset(layout, begin), absl::MakeConstSpan(*staging)};
}

absl::Status ReadPaddedRange(const ckpt::CheckpointReader& reader, ckpt::FlatBuffer which,
                             const ParameterLayout& layout, int64_t begin, absl::Span<float> out) {
  if (layout.total == layout.packed_total) return reader.ReadRange(which, begin, out);
  const int64_t end = begin + static_cast<int64_t>(out.size());
  const int64_t packed_begin = PackedOffset(layout, begin);
  std::vector<float> packed(static_cast<size_t>(PackedOffset(layout, end) - packed_begin));
  MLA_RETURN_IF_ERROR(reader.ReadRange(which, packed_begin, absl::MakeSpan(packed)));
  std::fill(out.begin(), out.end(), 0.0f);
  ForEachTensorRun(layout, begin, end, [&](int64_t at, int64_t packed_at, int64_t n) {
    std::copy_n(packed.begin() + (packed_at - packed_begin), n, out.begin() + (at - begin));
  });
  return absl::OkStatus();
}

absl::StatusOr<LoadedModel> LoadModelFromCheckpoint(const std::string& spec,
                                                    const std::string& run_dir,
                                                    Kernels* kernels) {
  MLA_ASSIGN_OR_RETURN(std::string path, ckpt::ResolveCheckpoint(spec, run_dir));
  MLA_ASSIGN_OR_RETURN(ckpt::CheckpointReader reader, ckpt::CheckpointReader::Open(path));
  auto config = ModelConfigFromEntries(reader.config());
  if (!config.ok())
    return absl::Status(config.status().code(),
                        absl::StrCat("checkpoint ", path, ": ", config.status().message()));
  LoadedModel out;
  out.path = path;
  out.config = *config;
  out.header = reader.header();
  MLA_ASSIGN_OR_RETURN(out.model, GptModel::Create(out.config, kernels));
  MLA_RETURN_IF_ERROR(reader.ExpectLayout(TensorSpecs(out.model->layout())));
  MLA_RETURN_IF_ERROR(FillFromHost(*kernels, out.model->params(), out.model->num_params(),
                                   [&](absl::Span<float> params) {
                                     return ReadPaddedRange(reader, ckpt::FlatBuffer::kParams,
                                                            out.model->layout(), 0, params);
                                   }));
  MLA_ASSIGN_OR_RETURN(out.tokenizer_model, reader.ReadTokenizerModel());
  return out;
}

}  // namespace mla

#include "runtime/model_checkpoint.h"

#include <algorithm>
#include <climits>
#include <variant>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "checkpoint/commit.h"
#include "runtime/host_staging.h"

namespace mla {

// The schema's C++ types map to the entries' types: int → int64, bool →
// bool, float → double, AttentionKind → its name as a string (format v1's
// types, so every checkpoint written before still loads).
std::vector<ckpt::ConfigEntry> ModelConfigEntries(const ModelConfig& c) {
  struct Entry {
    const ModelConfig& c;
    ckpt::ConfigValue operator()(int ModelConfig::*m) const { return int64_t{c.*m}; }
    ckpt::ConfigValue operator()(bool ModelConfig::*m) const { return c.*m; }
    ckpt::ConfigValue operator()(float ModelConfig::*m) const { return static_cast<double>(c.*m); }
    ckpt::ConfigValue operator()(AttentionKind ModelConfig::*m) const {
      return std::string(AttentionKindName(c.*m));
    }
  };
  std::vector<ckpt::ConfigEntry> entries;
  for (const ModelConfigField& f : ModelConfigFields())
    entries.push_back({std::string(f.name), std::visit(Entry{c}, f.member)});
  return entries;
}

absl::StatusOr<ModelConfig> ModelConfigFromEntries(const std::vector<ckpt::ConfigEntry>& entries) {
  struct Read {
    absl::string_view key;
    const ckpt::ConfigValue& v;
    ModelConfig* c;
    absl::Status operator()(int ModelConfig::*m) const {
      const int64_t* i = std::get_if<int64_t>(&v);
      if (i == nullptr || *i < INT32_MIN || *i > INT32_MAX)
        return absl::InvalidArgumentError(absl::StrCat("config field '", key, "' is not a 32-bit integer"));
      c->*m = static_cast<int>(*i);
      return absl::OkStatus();
    }
    absl::Status operator()(bool ModelConfig::*m) const {
      const bool* b = std::get_if<bool>(&v);
      if (b == nullptr) return absl::InvalidArgumentError(absl::StrCat("config field '", key, "' is not a boolean"));
      c->*m = *b;
      return absl::OkStatus();
    }
    absl::Status operator()(float ModelConfig::*m) const {
      const double* d = std::get_if<double>(&v);
      if (d == nullptr) return absl::InvalidArgumentError(absl::StrCat("config field '", key, "' is not a number"));
      c->*m = static_cast<float>(*d);
      return absl::OkStatus();
    }
    absl::Status operator()(AttentionKind ModelConfig::*m) const {
      const std::string* name = std::get_if<std::string>(&v);
      if (name == nullptr) return absl::InvalidArgumentError(absl::StrCat("config field '", key, "' is not a string"));
      MLA_ASSIGN_OR_RETURN(c->*m, ParseAttentionKind(*name));
      return absl::OkStatus();
    }
  };
  ModelConfig c;
  for (const ModelConfigField& f : ModelConfigFields()) {
    const ckpt::ConfigValue* v = nullptr;
    for (const auto& e : entries)
      if (e.key == f.name) v = &e.value;
    if (v == nullptr) return absl::NotFoundError(absl::StrCat("config field '", f.name, "' is missing"));
    MLA_RETURN_IF_ERROR(std::visit(Read{f.name, *v, &c}, f.member));
  }
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

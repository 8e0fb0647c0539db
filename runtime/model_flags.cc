#include "runtime/model_flags.h"

#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace {

// The schema's help with its default appended: "Model width C (default 512)."
std::string FlagHelp(absl::string_view name, absl::string_view help) {
  const mla::ModelConfigField* field = mla::FindModelConfigField(name);
  CHECK(field != nullptr) << name;
  return absl::StrCat(help, " Default: ", mla::ModelConfigFieldText(mla::ModelConfig(), *field),
                      ".");
}

}  // namespace

#define MLA_MODEL_FLAG(type, name, default_value, help) \
  ABSL_FLAG(std::optional<type>, name, std::nullopt, FlagHelp(#name, help));
MLA_MODEL_CONFIG_FIELDS(MLA_MODEL_FLAG)
#undef MLA_MODEL_FLAG

namespace mla {

ModelConfig ModelConfigFromFlags(ModelConfig base) {
#define MLA_APPLY_MODEL_FLAG(type, name, default_value, help) \
  if (const std::optional<type> v = absl::GetFlag(FLAGS_##name)) base.name = *v;
  MLA_MODEL_CONFIG_FIELDS(MLA_APPLY_MODEL_FLAG)
#undef MLA_APPLY_MODEL_FLAG
  return base;
}

bool ModelFlagGiven(absl::string_view name) {
#define MLA_MODEL_FLAG_GIVEN(type, field, default_value, help) \
  if (name == #field) return absl::GetFlag(FLAGS_##field).has_value();
  MLA_MODEL_CONFIG_FIELDS(MLA_MODEL_FLAG_GIVEN)
#undef MLA_MODEL_FLAG_GIVEN
  LOG(FATAL) << "ModelFlagGiven: '" << name << "' is not a model config field";
}

}  // namespace mla

#pragma once
// The model flags every program shares (mla-train, mla-eval, mla-calc,
// mla-bench): one Abseil flag per row of the ModelConfig schema
// (MLA_MODEL_CONFIG_FIELDS in runtime/model_config.h), so each has the same
// name, help and default in every program. A program gets them by linking
// mla_model_flags. Each flag is optional: one not given leaves the field at
// the value the program starts from (the schema default unless the program
// says otherwise, as mla-train does for vocab_size).
//
// Thread safety: read the flags after absl::ParseCommandLine, from one thread.
#include "absl/strings/string_view.h"
#include "runtime/model_config.h"

namespace mla {

// `base` with every model flag that was given applied (not validated).
ModelConfig ModelConfigFromFlags(ModelConfig base = ModelConfig());

// Whether the model flag --`name` was given (on the command line or in a
// flagfile). `name` must be a schema field.
bool ModelFlagGiven(absl::string_view name);

}  // namespace mla

// Fuzz target: the model config as read back from a checkpoint's /config
// (ModelConfigFromEntries in runtime/model_checkpoint.h, which ends in
// ValidateModelConfig) and what is derived from an accepted config: the cost
// model and the parameter layout. The input is flagfile text, one
// `--key=value` (or `key=value`) per line; a value is a bool (true/false), an
// int64, a double or else a string, as the checkpoint writer types them. An
// accepted config must give a layout whose size equals the counted
// parameters, with no overflow on the way (UBSan).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "runtime/model_checkpoint.h"
#include "runtime/model_config.h"
#include "runtime/parameter_layout.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

// Replaces the value of `key`, or appends it.
void Set(std::vector<mla::ckpt::ConfigEntry>* entries, const std::string& key,
         mla::ckpt::ConfigValue value) {
  for (auto& e : *entries) {
    if (e.key == key) {
      e.value = std::move(value);
      return;
    }
  }
  entries->push_back({key, std::move(value)});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  // Start from a complete default config (recipes leave most fields at their
  // defaults and vocab_size to the shard) so inputs reach validation; a line
  // `-key` removes a field, so missing fields are explored too.
  mla::ModelConfig defaults;
  defaults.vocab_size = 512;
  std::vector<mla::ckpt::ConfigEntry> entries = mla::ModelConfigEntries(defaults);
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.size() > 1 && line[0] == '-' && line[1] != '-') {
      const std::string key(line.substr(1));
      std::erase_if(entries, [&](const mla::ckpt::ConfigEntry& e) { return e.key == key; });
      continue;
    }
    absl::ConsumePrefix(&line, "--");
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) continue;
    const std::string key(line.substr(0, eq));
    const absl::string_view value = line.substr(eq + 1);
    int64_t i;
    double d;
    if (value == "true" || value == "false") {
      Set(&entries, key, value == "true");
    } else if (absl::SimpleAtoi(value, &i)) {
      Set(&entries, key, i);
    } else if (absl::SimpleAtod(value, &d)) {
      Set(&entries, key, d);
    } else {
      Set(&entries, key, std::string(value));
    }
  }
  auto config = mla::ModelConfigFromEntries(entries);
  if (!config.ok()) return 0;
  MLA_FUZZ_CHECK(mla::ValidateModelConfig(*config).ok(), "accepted config fails validation");
  const mla::ModelCost cost = mla::ComputeModelCost(*config);
  MLA_FUZZ_CHECK(cost.parameters > 0, "non-positive parameter count");
  // The layout is a list of names and shapes (no tensor memory), cheap for
  // any accepted size.
  const mla::ParameterLayout layout = mla::BuildParameterLayout(*config);
  MLA_FUZZ_CHECK(layout.packed_total == cost.parameters, "layout size differs from the cost model");
  // The entries written for this config read back as the same config.
  auto again = mla::ModelConfigFromEntries(mla::ModelConfigEntries(*config));
  MLA_FUZZ_CHECK(again.ok() && mla::ModelConfigToString(*again) == mla::ModelConfigToString(*config),
                 "config does not round-trip through checkpoint entries");
  return 0;
}

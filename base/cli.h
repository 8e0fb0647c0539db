#pragma once
// Command-line set-up shared by every mlatrain program: the usage text and a
// --help that lists the program's own flags (Abseil's default shows only
// flags defined in a file named like the binary, which none of ours is).
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace mla {

inline void SetCommandLineUsage(absl::string_view usage) {
  absl::SetProgramUsageMessage(usage);
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view file) {
    return !absl::StrContains(file, "absl/");
  };
  config.contains_helpshort_flags = config.contains_help_flags;
  absl::SetFlagsUsageConfig(config);
}

}  // namespace mla

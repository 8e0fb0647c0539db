#pragma once
// Command-line set-up shared by every mlatrain program: the usage text and a
// --help that lists the program's own flags (Abseil's default shows only
// flags defined in a file named like the binary, which none of ours is), and
// the strict checks around Abseil's parser: a flagfile with Windows (CR LF)
// line endings would hand every value a trailing '\r', and an argument that is
// not a flag (e.g. the "false" of `--skip_nonfinite false`, which Abseil
// reads as `--skip_nonfinite` followed by a stray word) would be ignored;
// and --threads capped at the CPUs the process may use.
#include <sched.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <fstream>
#include <thread>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

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

// SetCommandLineUsage(usage), then Abseil's parse of the command line (which
// answers --help); for programs that read no positional arguments.
inline void ParseCommandLineWithUsage(int argc, char** argv, absl::string_view usage) {
  SetCommandLineUsage(usage);
  absl::ParseCommandLine(argc, argv);
}

// A program's exit status for the outcome of its work: 0, or 1 after
// "program: message" on stderr.
inline int ExitStatus(absl::string_view program, const absl::Status& status) {
  if (status.ok()) return 0;
  std::fprintf(stderr, "%.*s: %.*s\n", static_cast<int>(program.size()), program.data(),
               static_cast<int>(status.message().size()), status.message().data());
  return 1;
}

namespace cli_internal {

// The files named by one "--flagfile=a,b" / "-flagfile=a" argument (none if
// `arg` is not one); `next` is the following argument, for "--flagfile a".
inline std::vector<std::string> FlagfilesOf(absl::string_view arg, const char* next) {
  if (!absl::ConsumePrefix(&arg, "--") && !absl::ConsumePrefix(&arg, "-")) return {};
  if (!absl::ConsumePrefix(&arg, "flagfile")) return {};
  absl::string_view value;
  if (absl::ConsumePrefix(&arg, "=")) {
    value = arg;
  } else if (arg.empty() && next != nullptr) {
    value = next;
  } else {
    return {};
  }
  return absl::StrSplit(value, ',', absl::SkipEmpty());
}

inline absl::Status CheckFlagfile(const std::string& path, int depth) {
  if (depth > 16) return absl::InvalidArgumentError(absl::StrCat("flagfile ", path, " nests too deeply"));
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::OkStatus();  // Abseil names the missing file
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (absl::StrContains(line, '\r'))
      return absl::InvalidArgumentError(absl::StrCat(
          "flagfile ", path, " line ", number, " has a carriage return (Windows line ending): '",
          absl::StrReplaceAll(line, {{"\r", "\\r"}}),
          "'; convert the file to Unix line endings (dos2unix, or sed -i 's/\\r$//')"));
    for (const std::string& nested : FlagfilesOf(absl::StripAsciiWhitespace(line), nullptr)) {
      absl::Status s = CheckFlagfile(nested, depth + 1);
      if (!s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace cli_internal

// Refuses a flagfile (named in argv, or nested in one) with CR line endings.
// Call before absl::ParseCommandLine.
inline absl::Status CheckFlagfiles(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    for (const std::string& file :
         cli_internal::FlagfilesOf(argv[i], i + 1 < argc ? argv[i + 1] : nullptr)) {
      absl::Status s = cli_internal::CheckFlagfile(file, 0);
      if (!s.ok()) return s;
    }
  return absl::OkStatus();
}

// Refuses arguments that are not flags: `positional` is what
// absl::ParseCommandLine returned (argv[0] first); the program takes none.
inline absl::Status CheckNoStrayArguments(const std::vector<char*>& positional) {
  if (positional.size() <= 1) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "unexpected argument '", positional[1],
      "': every option is a flag --name=value (a boolean is --name, --noname or "
      "--name=true|false; `--name false` is --name followed by a stray word)"));
}

// The CPUs this process may run on (its affinity mask: taskset, cgroup cpusets).
inline int AvailableCpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

// A --threads value above AvailableCpus() (which would oversubscribe, or
// crash OpenMP with absurd values) capped there, with a warning on stderr.
inline int CapThreads(int requested, const char* program) {
  const int cpus = AvailableCpus();
  if (requested <= cpus) return requested;
  std::fprintf(stderr, "%s: warning: --threads=%d capped at the %d CPUs available\n", program,
               requested, cpus);
  return cpus;
}

}  // namespace mla

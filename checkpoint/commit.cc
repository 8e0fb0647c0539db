#include "checkpoint/commit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/safe_output.h"
#include "base/status_macros.h"
#include "glog/logging.h"

namespace mla::ckpt {
namespace {

// The step of a complete checkpoint name "ckpt-<digits>.h5", or -1.
int64_t StepOfName(absl::string_view name) {
  if (!absl::ConsumePrefix(&name, "ckpt-") || !absl::ConsumeSuffix(&name, ".h5")) return -1;
  if (name.empty() || name.size() > 18) return -1;
  for (char c : name)
    if (c < '0' || c > '9') return -1;
  int64_t step = -1;
  if (!absl::SimpleAtoi(name, &step)) return -1;
  return step;
}

}  // namespace

std::string CheckpointFileName(int64_t step) { return absl::StrCat("ckpt-", step, ".h5"); }

absl::Status MakeDirs(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create directory ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> ListCheckpointSteps(const std::string& dir) {
  std::vector<int64_t> steps;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return steps;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const int64_t step = StepOfName(it->path().filename().string());
    if (step >= 0 && it->is_regular_file(ec)) steps.push_back(step);
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", dir, ": ", ec.message()));
  std::sort(steps.begin(), steps.end());
  return steps;
}

std::vector<int64_t> StepsToKeep(const std::vector<int64_t>& steps, int keep_last, int keep_every) {
  std::vector<int64_t> sorted = steps;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> keep;
  const int64_t n = static_cast<int64_t>(sorted.size());
  for (int64_t i = 0; i < n; ++i) {
    const bool recent = i >= n - std::max(keep_last, 0);
    const bool milestone = keep_every > 0 && sorted[i] % keep_every == 0;
    if (recent || milestone) keep.push_back(sorted[i]);
  }
  return keep;
}

absl::Status ApplyRetention(const std::string& dir, int64_t current_step, int keep_last,
                            int keep_every) {
  MLA_ASSIGN_OR_RETURN(std::vector<int64_t> steps, ListCheckpointSteps(dir));
  const std::vector<int64_t> kept = StepsToKeep(steps, keep_last, keep_every);
  std::set<int64_t> keep(kept.begin(), kept.end());
  keep.insert(current_step);
  for (int64_t step : steps) {
    if (keep.count(step)) continue;
    const std::string path = absl::StrCat(dir, "/", CheckpointFileName(step));
    if (::unlink(path.c_str()) != 0) return ErrnoError("cannot delete old checkpoint", path);
    LOG(INFO) << "checkpoint retention: deleted " << path;
  }
  // Leftovers of saves that never committed.
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    absl::string_view base = name;
    if (!absl::ConsumeSuffix(&base, kTmpSuffix) || StepOfName(base) < 0) continue;
    const std::string path = it->path().string();
    if (::unlink(path.c_str()) != 0) return ErrnoError("cannot delete stale", path);
    LOG(INFO) << "checkpoint retention: deleted stale " << path;
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

namespace {
absl::StatusOr<std::string> NewestIn(const std::string& dir) {
  MLA_ASSIGN_OR_RETURN(std::vector<int64_t> steps, ListCheckpointSteps(dir));
  if (steps.empty())
    return absl::NotFoundError(absl::StrCat("no complete checkpoint (ckpt-<step>.h5) in ", dir));
  return absl::StrCat(dir, "/", CheckpointFileName(steps.back()));
}
}  // namespace

absl::StatusOr<std::string> ResolveCheckpoint(const std::string& spec, const std::string& run_dir) {
  if (spec == "auto") return NewestIn(run_dir);
  std::error_code ec;
  if (std::filesystem::is_directory(spec, ec)) {
    const std::string pointer = absl::StrCat(spec, "/", kLatestFile);
    if (!std::filesystem::exists(pointer, ec)) return NewestIn(spec);
    Fd fd(::open(pointer.c_str(), O_RDONLY));
    if (fd.get() < 0) return ErrnoError("cannot open", pointer);
    char buf[256];
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) return ErrnoError("cannot read", pointer);
    absl::string_view name(buf, static_cast<size_t>(n));
    name = absl::StripAsciiWhitespace(name);
    if (StepOfName(name) < 0)
      return absl::DataLossError(absl::StrCat(
          pointer, " does not name a checkpoint file (expected ckpt-<step>.h5): '", name, "'"));
    const std::string path = absl::StrCat(spec, "/", name);
    if (!std::filesystem::is_regular_file(path, ec))
      return absl::NotFoundError(absl::StrCat(pointer, " names ", name, ", which does not exist"));
    return path;
  }
  if (!std::filesystem::is_regular_file(spec, ec))
    return absl::NotFoundError(absl::StrCat("checkpoint ", spec, " does not exist"));
  return spec;
}

}  // namespace mla::ckpt

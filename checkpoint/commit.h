#pragma once
// The file-system half of a checkpoint: naming (`ckpt-<step>.h5`), durable
// atomic commit (fsync file → rename → fsync directory), the `latest` pointer,
// finding the newest complete checkpoint and retention. POSIX only; no HDF5,
// no MPI. The fsync/rename primitives are base/safe_output.h's. Functions are safe to call from any thread on distinct paths; two
// writers on one directory are not supported. Failures return a status naming
// the path and the errno text.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mla::ckpt {

std::string CheckpointFileName(int64_t step);  // "ckpt-<step>.h5"
inline constexpr char kLatestFile[] = "latest";
inline constexpr char kTmpSuffix[] = ".tmp";

// `dir` and its parents, like mkdir -p.
absl::Status MakeDirs(const std::string& dir);

// Steps of the complete checkpoints (`ckpt-<step>.h5`, never `.tmp`) in `dir`,
// ascending. An absent directory has none.
absl::StatusOr<std::vector<int64_t>> ListCheckpointSteps(const std::string& dir);

// Which steps retention keeps among `steps`: the last `keep_last` and every
// step divisible by `keep_every` (0 = none kept for that reason).
std::vector<int64_t> StepsToKeep(const std::vector<int64_t>& steps, int keep_last, int keep_every);

// Deletes the checkpoints of `dir` that StepsToKeep drops, and stale `.tmp`
// files (a crashed save); `current_step` is always kept.
absl::Status ApplyRetention(const std::string& dir, int64_t current_step, int keep_last,
                            int keep_every);

// What a reader should open for `spec`:
//  - "auto": the newest complete checkpoint in `run_dir` (NotFound if none);
//  - a directory: the file named by its `latest` pointer, or the newest
//    complete checkpoint when there is no pointer;
//  - anything else: that file, which must exist.
absl::StatusOr<std::string> ResolveCheckpoint(const std::string& spec, const std::string& run_dir);

}  // namespace mla::ckpt

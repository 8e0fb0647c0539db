#pragma once
// Reading and verifying a checkpoint (docs/checkpoint-format.md). A reader
// opens the file on its own (HDF5's POSIX driver; no MPI, no collective calls),
// so every rank can read just the range of the flat buffers it needs:
// resuming at another world size or ZeRO stage is reading another range.
//
// Open() first checks the integrity header with plain file I/O (magic,
// version, the file's size, the digest of every byte; checkpoint/integrity.h)
// and lets HDF5 parse the file only when it matches. It then checks the schema
// (format name, known version, required groups and attributes, tensor layout
// consistent across /model and the moments) and bounds every size before
// allocating; errors name the file and the problem.
// A reader is move-only, owns its HDF5 file handle and is not thread-safe.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "checkpoint/format.h"
#include "checkpoint/integrity.h"

namespace mla::ckpt {

class CheckpointReader {
 public:
  static absl::StatusOr<CheckpointReader> Open(const std::string& path);

  CheckpointReader(CheckpointReader&&) noexcept;
  CheckpointReader& operator=(CheckpointReader&&) noexcept;
  ~CheckpointReader();

  const std::string& path() const { return path_; }
  const CheckpointHeader& header() const { return header_; }
  // The integrity header, as checked by Open().
  const IntegrityHeader& integrity() const { return integrity_; }
  const std::vector<ConfigEntry>& config() const { return config_; }
  // Value of /config attribute `key`, or nullptr.
  const ConfigValue* FindConfig(absl::string_view key) const;
  const AdamWScalars& adamw() const { return adamw_; }
  // The tensors in flat-buffer order (by their `offset` attributes).
  const std::vector<TensorSpec>& layout() const { return layout_; }
  int64_t total() const { return total_; }
  // Names of the arrays under /state.
  const std::vector<std::string>& state_names() const { return state_names_; }

  // OK when the file's tensors are exactly `expected` (names, shapes, offsets,
  // order); otherwise the first difference.
  absl::Status ExpectLayout(absl::Span<const TensorSpec> expected) const;

  // Reads elements [lo, lo + out.size()) of a flat buffer into `out`.
  absl::Status ReadRange(FlatBuffer which, int64_t lo, absl::Span<float> out) const;
  absl::StatusOr<std::vector<int64_t>> ReadState(const std::string& name) const;
  absl::StatusOr<std::string> ReadTokenizerModel() const;

 private:
  CheckpointReader();
  absl::Status Load();
  absl::Status Error(const absl::Status& status) const;  // prefixes the path

  struct Handles;
  std::string path_;
  std::unique_ptr<Handles> h_;
  IntegrityHeader integrity_;
  CheckpointHeader header_;
  std::vector<ConfigEntry> config_;
  AdamWScalars adamw_;
  std::vector<TensorSpec> layout_;
  int64_t total_ = 0;
  std::vector<std::string> state_names_;
};

struct TensorCheck {
  std::string group_and_name;  // e.g. "/model/wte.weight"
  int64_t nonfinite = 0;
};

struct VerifyReport {
  int64_t tensors_read = 0;
  int64_t bytes_read = 0;
  int64_t nonfinite = 0;                // over all tensors
  std::vector<TensorCheck> with_nonfinite;
};

// Full check of a checkpoint file: the integrity header and schema as in
// Open(), the layout against `expected` when non-empty, every element of every
// dataset read and non-finite values counted. Returns an error naming the file
// for the first problem found, including non-finite values; `report`
// (optional) holds what was checked so far. The second form continues from a
// reader already open (its file's digest was checked by Open).
absl::Status VerifyCheckpoint(const std::string& path, absl::Span<const TensorSpec> expected,
                              VerifyReport* report = nullptr);
absl::Status VerifyCheckpoint(const CheckpointReader& reader, absl::Span<const TensorSpec> expected,
                              VerifyReport* report = nullptr);

}  // namespace mla::ckpt

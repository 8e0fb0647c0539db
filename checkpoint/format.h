#pragma once
// The mlatrain checkpoint format, version 2 (docs/checkpoint-format.md): its
// constants and the plain types the writer and reader exchange with callers.
// Nothing here touches HDF5 or MPI; every type is a value type, safe to copy
// and to use from any thread.
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/string_view.h"

namespace mla::ckpt {

inline constexpr char kFormatName[] = "mlatrain-checkpoint";
// Version 2 added the integrity header (checkpoint/integrity.h) and stores
// every dataset contiguous and unfiltered (no per-chunk fletcher32); a
// version 1 file (no header) is refused.
inline constexpr int64_t kFormatVersion = 2;

// Group paths inside the file.
inline constexpr char kConfigGroup[] = "/config";
inline constexpr char kModelGroup[] = "/model";
inline constexpr char kAdamWGroup[] = "/optim/adamw";
inline constexpr char kAdamMGroup[] = "/optim/adamw/m";
inline constexpr char kAdamVGroup[] = "/optim/adamw/v";
inline constexpr char kStateGroup[] = "/state";
inline constexpr char kTokenizerDataset[] = "/tokenizer/model";
// Attribute on every tensor dataset: its offset (in floats) in the flat buffer.
inline constexpr char kOffsetAttr[] = "offset";

// Bounds applied to every size read from a file before anything is allocated,
// so a damaged or hostile file gives an error instead of an absurd allocation.
inline constexpr int64_t kMaxTensors = 1 << 20;
inline constexpr int64_t kMaxTensorElements = int64_t{1} << 36;  // 256 GiB of float32
inline constexpr int64_t kMaxConfigEntries = 4096;
inline constexpr int64_t kMaxStringBytes = 1 << 20;
inline constexpr int64_t kMaxStateArrays = 4096;
inline constexpr int64_t kMaxStateElements = 1 << 24;
inline constexpr int64_t kMaxTokenizerBytes = int64_t{256} << 20;
inline constexpr int64_t kMaxWorldSize = 1 << 24;

// A /config attribute value: HDF5 int64, float64, enum bool or fixed-length string.
using ConfigValue = std::variant<int64_t, double, bool, std::string>;

struct ConfigEntry {
  std::string key;
  ConfigValue value;
};

// The value printed the way `mla-ckpt show` and the safetensors metadata do
// (bools as true/false, doubles with enough digits to round-trip).
std::string ConfigValueToString(const ConfigValue& value);

// One tensor of the flat buffers: name, row-major shape (rank 1 or 2) and its
// range [offset, offset + numel) in the parameter buffer. The m and v buffers
// use the same layout.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;
  int64_t numel() const;
};

// The flat buffers a checkpoint holds, all with the same layout.
enum class FlatBuffer { kParams, kAdamM, kAdamV };
absl::string_view FlatBufferGroup(FlatBuffer which);  // "/model", "/optim/adamw/m", ...

// A half-open range [lo, hi) of a flat buffer.
struct FlatRange {
  int64_t lo = 0;
  int64_t hi = 0;
  int64_t size() const { return hi - lo; }
};

// The contiguous 1/world share of [0, total) that `rank` takes when a buffer
// is split evenly (the first total % world ranks get one extra element).
FlatRange EvenShard(int64_t total, int rank, int world);

// Root attributes other than the format name/version and provenance, which
// the writer fills in itself.
struct CheckpointHeader {
  int64_t step = 0;
  int64_t tokens_seen = 0;
  int64_t world_size = 1;  // ranks that wrote it
  int64_t zero_stage = 0;  // 0 = replicated optimizer state, 1 = ZeRO-1
  // Filled by the writer; read back by the reader.
  std::string created_utc;       // ISO 8601, e.g. 2025-01-31T12:00:00Z
  std::string mlatrain_version;  // MLA_VERSION
  std::string git_revision;      // MLA_GIT_REVISION
};

// AdamW scalars stored as attributes of /optim/adamw.
struct AdamWScalars {
  int64_t step = 0;  // t, counted from 1 after the first update
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
};

// A small int64 array stored as /state/<name> (schedule, RNG, data loader).
struct StateArray {
  std::string name;
  std::vector<int64_t> values;
};

}  // namespace mla::ckpt

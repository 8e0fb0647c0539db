#pragma once
// MappedFile: a read-only memory map of a whole file (RAII: the mapping and the
// descriptor are released in the destructor). Move-only.
//
// Thread safety: the bytes are immutable once mapped, so any number of threads
// may read them concurrently.
// Failure: Open returns NotFound / PermissionDenied / Internal with the path and
// the system error; an empty file maps to an empty span (no mmap call).
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mla {

class MappedFile {
 public:
  static absl::StatusOr<MappedFile> Open(const std::string& path);

  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  void Release();

  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a whole file into a string (for text corpora and tokenizer models).
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace mla

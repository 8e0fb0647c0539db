#pragma once
// Shared by the fuzz targets: a per-process scratch file for readers that take
// a path (token shards, HDF5 checkpoints) and a check that aborts with a
// message, so a broken invariant is a crash the fuzzer records. Not
// thread-safe (libFuzzer runs one input at a time per process).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace mla::fuzz {

// Writes `data` to a file private to this process and returns its path. The
// file lives in /dev/shm when it exists (no disk I/O per input).
inline std::string WriteScratch(const uint8_t* data, size_t size, const char* suffix) {
  static const std::string dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  const std::string path = dir + "/mla-fuzz-" + std::to_string(getpid()) + suffix;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

#define MLA_FUZZ_CHECK(cond, msg)                                                   \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "fuzz invariant broken: %s (%s:%d): %s\n", #cond,       \
                   __FILE__, __LINE__, std::string(msg).c_str());                   \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

}  // namespace mla::fuzz

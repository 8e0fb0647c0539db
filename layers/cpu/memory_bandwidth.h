#pragma once
// The machine's memory read bandwidth, for the decode roofline of
// `mla-eval --task=report` (docs/benchmarks.md, "Decode roofline"): a
// streaming read (a float sum) over a buffer much larger than the
// last-level cache, each of the calling process's OpenMP threads reading an
// equal contiguous share, so the figure is for the thread count the decode
// cells run at. The buffer is placed by the threads that read it (first
// touch), read once untimed, then `repeats` timed passes; the fastest counts.
// Allocates the buffer for the call and frees it on return.
#include <cstdint>
#include <string>

namespace mla {

// Bytes of the last-level cache: the highest cache level sysfs lists for
// cpu0 (/sys/devices/system/cpu/cpu0/cache/index*/{level,size}), else L3,
// else L2 from sysconf; 0 when unknown.
int64_t LastLevelCacheBytes();
// A sysfs cache size ("32768K", "1M", "512"): bytes, or 0 when unreadable.
int64_t ParseCacheSize(const std::string& text);

struct ReadBandwidth {
  double gb_per_s = 0;       // 1e9 bytes per second
  int64_t buffer_bytes = 0;  // max(512 MiB, 4 × the last-level cache)
  int64_t llc_bytes = 0;     // LastLevelCacheBytes()
  int threads = 0;
};

ReadBandwidth MeasureReadBandwidth(int repeats);

}  // namespace mla

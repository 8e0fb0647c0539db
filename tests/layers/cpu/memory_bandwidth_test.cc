// The last-level cache size the decode roofline uses, and the read
// bandwidth measurement's bookkeeping.
#include "layers/cpu/memory_bandwidth.h"

#include <fstream>

#include "gtest/gtest.h"

namespace mla {
namespace {

TEST(ParseCacheSizeTest, SysfsUnits) {
  EXPECT_EQ(ParseCacheSize("32768K"), int64_t{32} << 20);
  EXPECT_EQ(ParseCacheSize("32768K\n"), int64_t{32} << 20);
  EXPECT_EQ(ParseCacheSize("1M"), int64_t{1} << 20);
  EXPECT_EQ(ParseCacheSize("2G"), int64_t{2} << 30);
  EXPECT_EQ(ParseCacheSize("512"), 512);
}

TEST(ParseCacheSizeTest, UnreadableIsZero) {
  EXPECT_EQ(ParseCacheSize(""), 0);
  EXPECT_EQ(ParseCacheSize("K"), 0);
  EXPECT_EQ(ParseCacheSize("12Q"), 0);
  EXPECT_EQ(ParseCacheSize("99999999999999999999K"), 0);
}

// Where sysfs lists cpu0's caches, the answer is one of the sizes it lists
// (the highest level's), never a figure sysfs does not know.
TEST(LastLevelCacheBytesTest, OneOfTheSizesSysfsLists) {
  const int64_t llc = LastLevelCacheBytes();
  bool listed = false, any = false;
  for (int index = 0; index < 16; ++index) {
    std::ifstream f("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/size");
    std::string size;
    if (!f || !std::getline(f, size)) continue;
    any = true;
    listed = listed || ParseCacheSize(size) == llc;
  }
  if (!any) GTEST_SKIP() << "sysfs lists no caches for cpu0 here";
  EXPECT_TRUE(listed) << "LastLevelCacheBytes() = " << llc;
  EXPECT_GT(llc, 0);
}

TEST(MeasureReadBandwidthTest, BufferIsFourTimesTheCacheAtLeast) {
  const ReadBandwidth r = MeasureReadBandwidth(1);
  EXPECT_GT(r.gb_per_s, 0);
  EXPECT_EQ(r.llc_bytes, LastLevelCacheBytes());
  EXPECT_GE(r.buffer_bytes, 4 * r.llc_bytes);
  EXPECT_GE(r.buffer_bytes, int64_t{512} << 20);
  EXPECT_GE(r.threads, 1);
}

}  // namespace
}  // namespace mla

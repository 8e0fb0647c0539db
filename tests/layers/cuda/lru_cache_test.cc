// LruCache (layers/cuda/lru_cache.h), the bound on LtMatmul's plan cache:
// host-only, runs everywhere.
#include "layers/cuda/lru_cache.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace mla::cuda {
namespace {

TEST(LruCacheTest, NeverHoldsMoreThanItsCapacity) {
  int released = 0;
  LruCache<int, std::string> cache(8, [&](std::string&) { ++released; });
  for (int key = 0; key < 1000; ++key) {
    cache.Insert(key, std::to_string(key));
    EXPECT_LE(cache.size(), 8u);
  }
  EXPECT_EQ(cache.size(), 8u);
  EXPECT_EQ(cache.evictions(), 992);
  EXPECT_EQ(released, 992);
  // The newest eight are the ones left.
  for (int key = 992; key < 1000; ++key) ASSERT_NE(cache.Find(key), nullptr) << key;
  EXPECT_EQ(cache.Find(991), nullptr);
}

TEST(LruCacheTest, EvictsTheLeastRecentlyUsedEntry) {
  std::vector<int> evicted;
  LruCache<int, int> cache(3, [&](int& v) { evicted.push_back(v); });
  cache.Insert(1, 10);
  cache.Insert(2, 20);
  cache.Insert(3, 30);
  ASSERT_NE(cache.Find(1), nullptr);  // 2 is now the least recently used
  cache.Insert(4, 40);
  EXPECT_EQ(evicted, std::vector<int>({20}));
  EXPECT_EQ(cache.Find(2), nullptr);
  EXPECT_EQ(*cache.Find(1), 10);
  EXPECT_EQ(*cache.Find(3), 30);
  EXPECT_EQ(*cache.Find(4), 40);
}

TEST(LruCacheTest, ReleasesEveryRemainingEntryExactlyOnce) {
  int released = 0;
  {
    LruCache<int, int> cache(4, [&](int&) { ++released; });
    for (int key = 0; key < 6; ++key) cache.Insert(key, key);
    EXPECT_EQ(released, 2);
    cache.Clear();
    EXPECT_EQ(released, 6);
    EXPECT_EQ(cache.size(), 0u);
    cache.Insert(7, 7);
  }
  EXPECT_EQ(released, 7);  // the destructor releases what is left
}

TEST(LruCacheDeathTest, InsertingAPresentKeyIsAnInvariantBreach) {
  LruCache<int, int> cache(2, [](int&) {});
  cache.Insert(1, 1);
  EXPECT_DEATH(cache.Insert(1, 2), "already present");
}

}  // namespace
}  // namespace mla::cuda

#pragma once
// LruCache<K, V>: a map that holds at most `capacity` entries. Finding an
// entry makes it the most recently used; inserting into a full cache first
// removes the least recently used entry and hands it to `on_evict` (which
// releases whatever the value owns). Clear() and the destructor hand every
// remaining entry to `on_evict` too, so a value's resources are released
// exactly once. LtMatmul keeps its cuBLASLt plans in one, so decoding, which
// meets a new GEMM shape at every cache length, cannot grow the plan cache
// without bound. Host-only, no CUDA; not thread safe.
#include <cstddef>
#include <functional>
#include <list>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "glog/logging.h"

namespace mla::cuda {

template <typename K, typename V>
class LruCache {
 public:
  LruCache(size_t capacity, std::function<void(V&)> on_evict)
      : capacity_(capacity), on_evict_(std::move(on_evict)) {
    CHECK_GT(capacity_, 0u);
  }
  ~LruCache() { Clear(); }
  LruCache(const LruCache&) = delete;
  LruCache& operator=(const LruCache&) = delete;

  // The value of `key` (now the most recently used), or nullptr.
  V* Find(const K& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return &it->second->second;
  }

  // Inserts `key`, which must be absent, as the most recently used entry;
  // evicts the least recently used one first when the cache is full.
  V& Insert(const K& key, V value) {
    CHECK(!index_.contains(key)) << "LruCache::Insert of a key already present";
    if (order_.size() == capacity_) {
      on_evict_(order_.back().second);
      index_.erase(order_.back().first);
      order_.pop_back();
      ++evictions_;
    }
    order_.emplace_front(key, std::move(value));
    index_.emplace(key, order_.begin());
    return order_.front().second;
  }

  void Clear() {
    for (auto& [key, value] : order_) on_evict_(value);
    order_.clear();
    index_.clear();
  }

  size_t size() const { return order_.size(); }
  size_t capacity() const { return capacity_; }
  // Entries removed to make room since construction.
  int64_t evictions() const { return evictions_; }

 private:
  using Entries = std::list<std::pair<K, V>>;
  size_t capacity_;
  std::function<void(V&)> on_evict_;
  Entries order_;  // front: most recently used
  absl::flat_hash_map<K, typename Entries::iterator> index_;
  int64_t evictions_ = 0;
};

}  // namespace mla::cuda

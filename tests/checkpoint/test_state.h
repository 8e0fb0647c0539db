#pragma once
// Shared by the checkpoint tests: a small layout whose 2-D tensors have row
// lengths that flat ranges cut in the middle, values defined by closed-form
// formulas (exact in float32, so comparisons are exact and the python checks
// recompute them independently), and a fresh directory per test.
#include <mpi.h>
#include <stdlib.h>

#include <cstdint>
#include <string>
#include <vector>

#include "checkpoint/writer.h"

namespace mla::ckpt::testing {

// Exactly representable: multiples of 1/64, 1/128, 1/256 below 2^6.
inline float ParamAt(int64_t i) { return static_cast<float>(i % 4096) / 64.0f - 32.0f; }
inline float MomentMAt(int64_t i) { return static_cast<float>(i % 977) / 128.0f - 3.0f; }
inline float MomentVAt(int64_t i) { return static_cast<float>(i % 1013) / 256.0f; }

inline std::vector<TensorSpec> SmallLayout() {
  std::vector<TensorSpec> layout = {
      {"wte.weight", {37, 24}, 0},       {"blocks.0.ln1.weight", {24}, 0},
      {"blocks.0.attn.w_dkv", {12, 24}, 0}, {"blocks.0.attn.b_o", {24}, 0},
      {"blocks.0.mlp.w_fc", {96, 24}, 0},   {"ln_f.bias", {24}, 0},
  };
  int64_t offset = 0;
  for (TensorSpec& t : layout) {
    t.offset = offset;
    offset += t.numel();
  }
  return layout;
}

inline int64_t Total(const std::vector<TensorSpec>& layout) {
  return layout.back().offset + layout.back().numel();
}

struct Buffers {
  std::vector<float> params, m, v;
  explicit Buffers(int64_t total) : params(total), m(total), v(total) {
    for (int64_t i = 0; i < total; ++i) {
      params[i] = ParamAt(i);
      m[i] = MomentMAt(i);
      v[i] = MomentVAt(i);
    }
  }
};

inline std::string TokenizerBytes() {
  std::string bytes;
  for (int i = 0; i < 3000; ++i) bytes.push_back(static_cast<char>((i * 7 + 3) % 256));
  return bytes;
}

// The state a test saves: every part filled; slices set by the caller.
inline CheckpointState MakeState(const std::vector<TensorSpec>& layout, int64_t step) {
  CheckpointState s;
  s.header.step = step;
  s.header.tokens_seen = step * 4096;
  s.header.zero_stage = 1;
  s.config = {{"d_model", int64_t{24}},
              {"attention", std::string("mla_rope")},
              {"tied_embeddings", true},
              {"latent_norm", false},
              {"lr", 6e-4},
              {"rope_theta", 10000.0}};
  s.layout = layout;
  s.adamw = {step, 0.9, 0.95, 1e-8, 0.1};
  s.state = {{"schedule", {step, 100, 2000}},
             {"rng", {1234567890123LL, -5, 0, 42}},
             {"data_loader", {7, step * 16}},
             {"empty", {}}};
  s.tokenizer_model = TokenizerBytes();
  return s;
}

inline void SetSlices(CheckpointState& s, const Buffers& b, FlatRange params, FlatRange moments) {
  s.params = {params.lo, absl::MakeConstSpan(b.params).subspan(params.lo, params.size())};
  s.adam_m = {moments.lo, absl::MakeConstSpan(b.m).subspan(moments.lo, moments.size())};
  s.adam_v = {moments.lo, absl::MakeConstSpan(b.v).subspan(moments.lo, moments.size())};
}

// MakeState(layout, step) with SetSlices(s, b, params, moments).
inline CheckpointState MakeState(const std::vector<TensorSpec>& layout, int64_t step,
                                 const Buffers& b, FlatRange params, FlatRange moments) {
  CheckpointState s = MakeState(layout, step);
  SetSlices(s, b, params, moments);
  return s;
}

// SaveCheckpoint over `comm` into `dir` with the other options at their
// defaults: the written file's path, or the writer's error.
inline absl::StatusOr<std::string> SaveInto(MPI_Comm comm, const CheckpointState& s,
                                            const std::string& dir) {
  SaveOptions o;
  o.dir = dir;
  return SaveCheckpoint(comm, s, o);
}

// The whole SmallLayout state of `step`, with `b`'s values, saved by this
// rank alone into `dir`.
inline absl::StatusOr<std::string> SaveWholeSmall(const std::string& dir, const Buffers& b,
                                                  int64_t step) {
  const auto layout = SmallLayout();
  return SaveInto(MPI_COMM_SELF, MakeState(layout, step, b, {0, Total(layout)}, {0, Total(layout)}),
                  dir);
}

// A new empty directory, the same on every rank of `comm`.
inline std::string SharedTempDir(MPI_Comm comm) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  char buf[512] = {0};
  if (rank == 0) {
    const char* base = getenv("MLA_BINARY_DIR");
    std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/ckpt-test-XXXXXX";
    char* made = mkdtemp(tmpl.data());
    if (made != nullptr) snprintf(buf, sizeof(buf), "%s", made);
  }
  MPI_Bcast(buf, sizeof(buf), MPI_CHAR, 0, comm);
  return buf;
}

}  // namespace mla::ckpt::testing

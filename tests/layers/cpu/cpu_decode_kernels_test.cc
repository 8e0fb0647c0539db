// CpuKernels' decoding kernels (layers/kernels.h, "Decoding") against plain
// loops written here: gathers and appends exactly, RoPE and cache attention
// against double-precision references with first-order fp32 bounds
// (tests/layers/decode_test_util.h). Every call mixes segments of several
// lengths, slots out of order and positions deep into the slot, and the
// cache is filled beyond each slot's length, so a wrong slot, position or
// causal limit reads unrelated values and fails by O(1).
#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "layers/cpu/cpu_kernels.h"
#include "tests/layers/decode_test_util.h"

namespace mla {
namespace {

using testing::kU;
using testing::Random;
using testing::Seg;
using testing::Tables;

// Prefill of 5 rows in slot 2 from position 3, a single row of slot 0 at
// position 9, 4 rows of slot 3 from 0: rows 10, causal inside segments.
const std::vector<Seg> kSegs = {{2, 5, 3}, {0, 1, 9}, {3, 4, 0}};
constexpr int kSlots = 4, kL = 12;

TEST(DecodeKernelsTest, EmbeddingAddsThePositionRowOfEachRow) {
  CpuKernels k;
  const Tables t(kSegs);
  const int C = 7, V = 11;
  const auto wte = Random(V * C, 1), wpe = Random(kL * C, 2);
  std::vector<int32_t> tokens(t.M);
  for (int64_t r = 0; r < t.M; ++r) tokens[r] = static_cast<int32_t>((r * 5 + 3) % V);
  std::vector<float> x(t.M * C, 0.0f), plain(t.M * C, 0.0f);
  k.DecodeEmbedding(tokens.data(), wte.data(), wpe.data(), x.data(), C, t.batch());
  k.DecodeEmbedding(tokens.data(), wte.data(), nullptr, plain.data(), C, t.batch());
  for (int64_t r = 0; r < t.M; ++r)
    for (int j = 0; j < C; ++j) {
      // One fp32 addition: exact against the same addition.
      EXPECT_EQ(x[r * C + j], wte[tokens[r] * C + j] + wpe[t.pos[r] * C + j]) << r << "," << j;
      EXPECT_EQ(plain[r * C + j], wte[tokens[r] * C + j]);
    }
}

TEST(DecodeKernelsTest, RopeRotatesEachRowByItsOwnPosition) {
  CpuKernels k;
  const Tables t(kSegs);
  const int heads = 3, dims = 6, ld = heads * dims + 5;  // extra columns stay untouched
  const float theta = 10000.0f;
  const auto x0 = Random(t.M * ld, 3);
  std::vector<float> x = x0;
  k.DecodeRope(x.data(), ld, heads, dims, theta, t.batch());
  for (int64_t r = 0; r < t.M; ++r) {
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < dims / 2; ++i) {
        // docs/model.md: pair i turns by pos·θ^(−2i/dims) (fp32 frequency).
        const float freq = std::pow(theta, -2.0f * i / dims);
        const double a = static_cast<double>(t.pos[r]) * freq;
        const int64_t j = r * ld + h * dims + 2 * i;
        const double u0 = x0[j], u1 = x0[j + 1];
        // cos/sin rounded to fp32, two products and a sum: within 4u·(|u0|+|u1|).
        const double tol = 4 * kU * (std::fabs(u0) + std::fabs(u1));
        EXPECT_NEAR(x[j], u0 * std::cos(a) - u1 * std::sin(a), tol) << "row " << r;
        EXPECT_NEAR(x[j + 1], u0 * std::sin(a) + u1 * std::cos(a), tol) << "row " << r;
      }
    for (int j = heads * dims; j < ld; ++j) EXPECT_EQ(x[r * ld + j], x0[r * ld + j]);
  }
}

TEST(DecodeKernelsTest, CacheAppendWritesEachRowAtItsSlotAndPosition) {
  CpuKernels k;
  const Tables t(kSegs);
  const int width = 5, ld = 9;
  const auto src = Random(t.M * ld, 4);
  const auto before = Random(kSlots * kL * width, 5);
  std::vector<float> cache = before;
  k.DecodeCacheAppend(src.data() + 2, ld, width, cache.data(), kL, t.batch());
  std::vector<float> want = before;
  for (int64_t r = 0; r < t.M; ++r)
    for (int j = 0; j < width; ++j)
      want[(static_cast<int64_t>(t.SlotOf(r)) * kL + t.pos[r]) * width + j] = src[r * ld + 2 + j];
  EXPECT_EQ(cache, want);  // every other cache row unchanged
}

void ExpectWithin(const std::vector<float>& got, const testing::AttentionRef& want,
                  const char* what) {
  ASSERT_EQ(got.size(), want.y.size());
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (std::fabs(static_cast<double>(got[i]) - want.y[i]) > want.tol[i] && bad++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << " want " << want.y[i]
                    << " tol " << want.tol[i];
}

TEST(DecodeKernelsTest, MhaAttentionOverTheSlotCacheMatchesTheReference) {
  CpuKernels k;
  const Tables t(kSegs);
  const testing::MhaProblem p(t, kSlots, kL, /*q_offset=*/1);
  const int64_t ld_y = p.C + 4;
  std::vector<float> y(t.M * ld_y, 0.0f);
  k.DecodeAttention(p.in, t.batch(), y.data(), ld_y);
  const auto want = testing::ReferenceAttention(p.in, t, false, ld_y);
  ExpectWithin(y, want, "y");
}

// Absorbed and naive, with and without the shared rotary key.
void CheckLatent(bool absorbed, bool rope) {
  CpuKernels k;
  const Tables t(kSegs);
  const testing::LatentProblem p(t, kSlots, kL, rope);
  const int64_t ld_y = p.C;
  std::vector<float> y(t.M * ld_y, 0.0f);
  k.DecodeLatentAttention(p.in, t.batch(), absorbed, y.data(), ld_y);
  ExpectWithin(y, testing::ReferenceAttention(p.in, t, true, ld_y), absorbed ? "absorbed" : "naive");
}

TEST(DecodeKernelsTest, AbsorbedLatentAttentionMatchesTheExpandedReference) {
  CheckLatent(true, false);
}
TEST(DecodeKernelsTest, AbsorbedLatentAttentionWithRotaryKeyMatchesTheReference) {
  CheckLatent(true, true);
}
TEST(DecodeKernelsTest, NaiveLatentAttentionMatchesTheExpandedReference) {
  CheckLatent(false, false);
}
TEST(DecodeKernelsTest, NaiveLatentAttentionWithRotaryKeyMatchesTheReference) {
  CheckLatent(false, true);
}

// More segments than threads and fewer: the absorbed path splits a segment's
// rows into chunks only in the second case; both must agree with the reference.
TEST(DecodeKernelsTest, AbsorbedAttentionOfManySingleRowSegments) {
  CpuKernels k;
  std::vector<Seg> segs;
  for (int s = 0; s < 9; ++s) segs.push_back({(s * 5) % 9, 1, s});
  const Tables t(segs);
  const int H = 2, D = 4, C = H * D, R = 5, L = 10, slots = 9;
  const auto q = Random(t.M * C, 14, -2, 2);
  const auto lat = Random(slots * L * R, 15), w = Random(2 * C * R, 16);
  DecodeAttentionViews in;
  in.H = H;
  in.D = D;
  in.R = R;
  in.scale = 0.5f;
  in.cache_len = L;
  in.q = q.data();
  in.ld_q = C;
  in.latent = lat.data();
  in.w_uk = w.data();
  in.w_uv = w.data() + C * R;
  std::vector<float> y(t.M * C, 0.0f);
  k.DecodeLatentAttention(in, t.batch(), true, y.data(), C);
  ExpectWithin(y, testing::ReferenceAttention(in, t, true, C), "y");
}

}  // namespace
}  // namespace mla

#include "layers/cpu/onednn_matmul.h"

#include <functional>

#include "glog/logging.h"
#include "layers/math/activation_math.h"

namespace mla {
namespace {
using dnnl::memory;
using dt = memory::data_type;

memory::desc Strided(int64_t rows, int64_t cols, int64_t ld, bool transposed) {
  // A logical [rows, cols] matrix stored row-major with leading dimension ld,
  // or (transposed) stored as [cols, rows] with leading dimension ld.
  memory::dims strides = transposed ? memory::dims{1, ld} : memory::dims{ld, 1};
  return memory::desc({rows, cols}, dt::f32, strides);
}
}  // namespace

size_t MatmulShapeHash::operator()(const MatmulShape& s) const {
  size_t h = 0;
  auto mix = [&h](int64_t v) { h ^= std::hash<int64_t>()(v) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2); };
  mix(s.M); mix(s.N); mix(s.K); mix(s.lda); mix(s.ldb); mix(s.ldc);
  mix(s.trans_a); mix(s.trans_b); mix(static_cast<int>(s.epilogue)); mix(s.accumulate);
  return h;
}

OnednnMatmul::OnednnMatmul() : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {}

OnednnMatmul::Entry& OnednnMatmul::Get(const MatmulShape& s) {
  auto it = cache_.find(s);
  if (it != cache_.end()) return *it->second;
  CHECK(!(s.accumulate && s.epilogue == Epilogue::kBiasGelu)) << "GELU with accumulate";
  const memory::desc a_md = Strided(s.M, s.K, s.lda, s.trans_a);
  const memory::desc b_md = Strided(s.K, s.N, s.ldb, s.trans_b);
  const memory::desc c_md = Strided(s.M, s.N, s.ldc, false);
  const memory::desc bias_md({1, s.N}, dt::f32, memory::dims{s.N, 1});
  dnnl::post_ops ops;
  if (s.accumulate) ops.append_sum(1.0f);
  if (s.epilogue == Epilogue::kBiasGelu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_tanh, 0.0f, 0.0f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  const bool has_bias = s.epilogue != Epilogue::kNone;
  auto desc = has_bias ? dnnl::matmul::desc(a_md, b_md, bias_md, c_md)
                       : dnnl::matmul::desc(a_md, b_md, c_md);
  dnnl::matmul::primitive_desc pd(desc, attr, engine_);
  auto entry = std::make_unique<Entry>();
  entry->primitive = dnnl::matmul(pd);
  entry->a = memory(a_md, engine_, DNNL_MEMORY_NONE);
  entry->b = memory(b_md, engine_, DNNL_MEMORY_NONE);
  entry->c = memory(c_md, engine_, DNNL_MEMORY_NONE);
  if (has_bias) entry->bias = memory(bias_md, engine_, DNNL_MEMORY_NONE);
  Entry& ref = *entry;
  cache_.emplace(s, std::move(entry));
  return ref;
}

void OnednnMatmul::Run(const MatmulShape& s, const float* a, const float* b, const float* bias,
                       float* c) {
  // oneDNN refuses empty dimensions (it divides by them while dispatching):
  // an empty C needs nothing, and an empty sum (K == 0) is 0, then the epilogue.
  if (s.M == 0 || s.N == 0) return;
  if (s.K == 0) {
    for (int64_t i = 0; i < s.M; ++i) {
      for (int64_t j = 0; j < s.N; ++j) {
        float& y = c[i * s.ldc + j];
        float v = s.accumulate ? y : 0.0f;
        if (s.epilogue != Epilogue::kNone) v += bias[j];
        y = s.epilogue == Epilogue::kBiasGelu ? math::GeluTanh(v) : v;
      }
    }
    return;
  }
  Entry& e = Get(s);
  e.a.set_data_handle(const_cast<float*>(a));
  e.b.set_data_handle(const_cast<float*>(b));
  e.c.set_data_handle(c);
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, e.a}, {DNNL_ARG_WEIGHTS, e.b}, {DNNL_ARG_DST, e.c}};
  if (s.epilogue != Epilogue::kNone) {
    CHECK(bias != nullptr) << "bias epilogue without a bias";
    e.bias.set_data_handle(const_cast<float*>(bias));
    args.emplace(DNNL_ARG_BIAS, e.bias);
  }
  e.primitive.execute(stream_, args);
  stream_.wait();
}

std::string OnednnMatmul::ImplementationName(const MatmulShape& shape) {
  Entry& e = Get(shape);
  const char* name = nullptr;
  dnnl_primitive_desc_query(e.primitive.get_primitive_desc(), dnnl_query_impl_info_str, 0, &name);
  return name != nullptr ? name : "unknown";
}

}  // namespace mla

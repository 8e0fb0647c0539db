// Parity with the independent PyTorch reference (tests/reference/
// gpt_reference.py, float64): the same weights and tokens must give the same
// logits, loss and every parameter gradient, and the same losses over five
// AdamW steps, for every attention kind and option.
//
// Tolerances, from float32 arithmetic against a float64 oracle: unit
// round-off u = 2^-24 ≈ 6e-8. A logit passes through 2L+1 = 5 matmuls with at
// most 4C = 128 terms, LayerNorms and residual sums; the worst-case bound
// 5·128·u ≈ 4e-5 relative to the largest logit is far above the typical
// √K·u growth, so 1e-4·max|logit| bounds the logits. The loss is a mean of
// log-sum-exps of those logits: 1e-5 relative. Backward doubles the depth and
// adds the softmax and LayerNorm subtractions (cancellation up to ~10×):
// gradients must agree to 1e-3 in relative L2 norm per tensor. AdamW divides
// by sqrt(v), which is scale invariant, so the loss trajectory keeps the
// gradient tolerance: 1e-4 relative per loss over 5 small steps.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "layers/cpu/cpu_kernels.h"
#include "optim/adamw.h"
#include "runtime/gpt_model.h"
#include "tests/runtime/model_test_util.h"

namespace mla {
namespace {

namespace fs = std::filesystem;

std::vector<testing::NamedConfig> Cases() {
  const ModelConfig base = testing::MakeConfig(
      AttentionKind::kMlaRope,
      {.vocab_size = 61,
       .context_length = 80,  // > 64: crosses the CPU attention's causal row blocks
       .n_layer = 2, .d_model = 32, .n_head = 4, .kv_rank = 16, .rope_dim = 8});
  std::vector<testing::NamedConfig> out = testing::EveryKind(base);
  ModelConfig q = base;
  q.attention = AttentionKind::kMlaRope;
  q.q_rank = 12;
  q.latent_norm = true;
  q.tied_embeddings = false;
  out.push_back({"mla_rope_qrank_latentnorm_untied", q});
  return out;
}

template <typename T>
void WriteBinary(const fs::path& path, const std::vector<T>& v) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
}

std::vector<float> ReadFloats(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<float> v(raw.size() / sizeof(float));
  std::memcpy(v.data(), raw.data(), v.size() * sizeof(float));
  return v;
}

std::string ReadText(const fs::path& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Numbers of a flat JSON array or a single value after `key`.
std::vector<double> JsonNumbers(const std::string& json, const std::string& key) {
  std::vector<double> out;
  size_t pos = json.find("\"" + key + "\"");
  if (pos == std::string::npos) return out;
  pos = json.find(':', pos) + 1;
  const bool array = json.find_first_not_of(" ", pos) != std::string::npos &&
                     json[json.find_first_not_of(" ", pos)] == '[';
  const size_t end = array ? json.find(']', pos) : json.find_first_of(",}", pos);
  std::string body = json.substr(pos, end - pos);
  for (char& ch : body)
    if (ch == '[' || ch == ',') ch = ' ';
  std::istringstream in(body);
  double x;
  while (in >> x) out.push_back(x);
  return out;
}

class PytorchParityTest : public ::testing::TestWithParam<testing::NamedConfig> {};

TEST_P(PytorchParityTest, LogitsLossGradientsAndAdamWMatchReference) {
  const ModelConfig cfg = GetParam().config;
  const char* python = std::getenv("MLA_PYTHON");
  const char* src = std::getenv("MLA_SOURCE_DIR");
  ASSERT_NE(python, nullptr) << "MLA_PYTHON not set (run through ctest)";
  ASSERT_NE(src, nullptr);
  const fs::path dir = fs::temp_directory_path() / ("mla-parity-" + GetParam().name + "-" +
                                                     std::to_string(::getpid()));
  fs::create_directories(dir);

  CpuKernels kernels;
  auto model = *GptModel::Create(cfg, &kernels);
  // The reference reads the tensors packed (the checkpoint's offsets); the
  // model's buffer pads them, with zeros between.
  const ParameterLayout& layout = model->layout();
  std::vector<float> packed(static_cast<size_t>(layout.packed_total));
  testing::FillNormal(packed, 21, 0.1f);
  std::vector<float> p(static_cast<size_t>(model->num_params()), 0.0f);
  for (const ParamSpec& s : layout.params)
    for (int64_t i = 0; i < s.numel; ++i) {
      if (s.init == ParamSpec::Init::kOnes) packed[s.packed_offset + i] += 1.0f;
      p[s.offset + i] = packed[s.packed_offset + i];
    }
  model->LoadParamsFromHost(p.data(), 0, model->num_params());
  const int B = 3, T = cfg.context_length;
  const std::vector<int32_t> tokens = testing::RandomTokens(B * (T + 1), cfg.vocab_size, 8);
  std::vector<int32_t> in, tg;
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      in.push_back(tokens[b * (T + 1) + t]);
      tg.push_back(tokens[b * (T + 1) + t + 1]);
    }
  const std::vector<double> lrs = {1e-2, 8e-3, 6e-3, 4e-3, 2e-3};
  AdamWConfig ac;
  ac.beta1 = 0.9f;
  ac.beta2 = 0.95f;
  ac.eps = 1e-8f;
  ac.weight_decay = 0.1f;

  std::ostringstream js;
  js << "{\"config\": {\"vocab_size\": " << cfg.vocab_size << ", \"context_length\": "
     << cfg.context_length << ", \"n_layer\": " << cfg.n_layer << ", \"d_model\": " << cfg.d_model
     << ", \"n_head\": " << cfg.n_head << ", \"attention\": \"" << AttentionKindName(cfg.attention)
     << "\", \"kv_rank\": " << cfg.kv_rank << ", \"rope_dim\": " << cfg.rope_dim
     << ", \"q_rank\": " << cfg.q_rank << ", \"latent_norm\": " << (cfg.latent_norm ? "true" : "false")
     << ", \"mlp_ratio\": " << cfg.mlp_ratio << ", \"tied_embeddings\": "
     << (cfg.tied_embeddings ? "true" : "false") << ", \"rope_theta\": " << cfg.rope_theta
     << "}, \"batch\": " << B << ", \"seq\": " << T << ", \"dtype\": \"float64\", \"adamw\": {\"lr\": ["
     << absl::StrJoin(lrs, ", ") << "], \"beta1\": 0.9, \"beta2\": 0.95, \"eps\": 1e-08, "
     << "\"weight_decay\": 0.1, \"steps\": " << lrs.size() << "}, \"params\": [";
  for (size_t i = 0; i < model->layout().params.size(); ++i) {
    const ParamSpec& s = model->layout().params[i];
    js << (i ? ", " : "") << "{\"name\": \"" << s.name << "\", \"shape\": [" << absl::StrJoin(s.shape, ", ")
       << "], \"offset\": " << s.packed_offset << ", \"numel\": " << s.numel
       << ", \"decay\": " << (s.decay ? "true" : "false") << "}";
  }
  js << "]}";
  {
    std::ofstream f(dir / "case.json");
    f << js.str();
  }
  WriteBinary(dir / "params.f32", packed);
  WriteBinary(dir / "tokens.i32", tokens);
  const std::string cmd = absl::StrCat(python, " ", src, "/tests/reference/gpt_reference.py ", dir.string());
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  // Logits and loss.
  const double loss = model->Forward(in.data(), tg.data(), B, T);
  const std::vector<float> ref_logits = ReadFloats(dir / "ref_logits.f32");
  ASSERT_EQ(ref_logits.size(), static_cast<size_t>(B) * T * cfg.vocab_size);
  float max_logit = 0;
  for (float x : ref_logits) max_logit = std::max(max_logit, std::fabs(x));
  const std::vector<float> logits = model->LogitsToHost();
  ASSERT_EQ(logits.size(), ref_logits.size());
  for (size_t i = 0; i < ref_logits.size(); ++i)
    ASSERT_NEAR(logits[i], ref_logits[i], 1e-4 * max_logit) << "logit " << i;
  const double ref_loss = JsonNumbers(ReadText(dir / "ref_loss.json"), "loss").at(0);
  EXPECT_NEAR(loss, ref_loss, 1e-5 * ref_loss);

  // Every parameter gradient.
  model->ZeroGrads();
  model->Forward(in.data(), tg.data(), B, T, 1.0f / (B * T));
  model->Backward(in.data(), B, T);
  const std::vector<float> ref_grads = ReadFloats(dir / "ref_grads.f32");
  ASSERT_EQ(ref_grads.size(), packed.size());
  const std::vector<float> grads = model->GradsToHost();
  for (const ParamSpec& s : model->layout().params) {
    double diff = 0, norm = 0;
    for (int64_t i = 0; i < s.numel; ++i) {
      const double r = ref_grads[s.packed_offset + i], g = grads[s.offset + i];
      diff += (g - r) * (g - r);
      norm += r * r;
    }
    EXPECT_LE(std::sqrt(diff), 1e-3 * std::sqrt(norm) + 1e-9) << s.name;
  }

  // Five AdamW steps on the same batch.
  model->LoadParamsFromHost(p.data(), 0, model->num_params());
  auto opt = *AdamW::Create(ac, ElementRange{0, model->num_params()}, DecaySegments(layout));
  std::vector<double> losses;
  for (double lr : lrs) {
    model->ZeroGrads();
    losses.push_back(model->Forward(in.data(), tg.data(), B, T, 1.0f / (B * T)));
    model->Backward(in.data(), B, T);
    opt.Step(model->params(), model->grads(), static_cast<float>(lr));
  }
  losses.push_back(model->Forward(in.data(), tg.data(), B, T));
  const std::vector<double> ref_losses = JsonNumbers(ReadText(dir / "ref_adamw_losses.json"), "losses");
  ASSERT_EQ(ref_losses.size(), losses.size());
  for (size_t i = 0; i < losses.size(); ++i)
    EXPECT_NEAR(losses[i], ref_losses[i], 1e-4 * ref_losses[i]) << "AdamW loss " << i;
  EXPECT_LT(losses.back(), losses.front());  // the steps did train
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(AllKinds, PytorchParityTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace mla

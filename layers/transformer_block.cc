#include "layers/transformer_block.h"

namespace mla {
TransformerBlock::TransformerBlock(Kernels* kernels, AttentionShape shape, int mlp_hidden,
                                   BlockWeights weights)
    : kernels_(kernels),
      C_(shape.C),
      hidden_(mlp_hidden),
      weights_(weights),
      attention_(kernels, shape, weights.attn) {}

void TransformerBlock::Reserve(int B, int T, BlockScratch* s, ActivationSizer& z) {
  const int64_t M = static_cast<int64_t>(B) * T;
  ReserveCached(M, z);
  for (auto* v : {&ln2_, &x_mid_}) z.Need(*v, M * C_);
  for (auto* v : {&ln2_mean_, &ln2_rstd_}) z.Need(*v, M);
  z.Need(fc_pre_, M * hidden_);
  z.Need(s->d_ln, M * C_);
  z.Need(s->d_fc, M * hidden_);
  attention_.Reserve(B, T, &s->attn, z);
}

void TransformerBlock::ReserveCached(int64_t M, ActivationSizer& z) {
  z.Need(ln1_, M * C_);
  z.Need(ln1_mean_, M);
  z.Need(ln1_rstd_, M);
  z.Need(fc_act_, M * hidden_);
  attention_.ReserveCached(M, z);
}

void TransformerBlock::Forward(const float* p, const float* x_in, float* x_out, int B, int T) {
  Kernels& k = *kernels_;
  const int64_t M = static_cast<int64_t>(B) * T;
  const BlockWeights& w = weights_;
  k.LayerNormForward(x_in, p + w.ln1_w, p + w.ln1_b, ln1_.data(), ln1_mean_.data(),
                     ln1_rstd_.data(), M, C_);
  k.Copy(x_in, x_mid_.data(), M * C_);
  attention_.Forward(p, ln1_.data(), x_mid_.data(), B, T);
  k.LayerNormForward(x_mid_.data(), p + w.ln2_w, p + w.ln2_b, ln2_.data(), ln2_mean_.data(),
                     ln2_rstd_.data(), M, C_);
  k.LinearGeluForward(ln2_.data(), p + w.w_fc, p + w.b_fc, fc_pre_.data(), fc_act_.data(), M,
                      hidden_, C_);
  k.Copy(x_mid_.data(), x_out, M * C_);
  k.LinearForward(fc_act_.data(), p + w.w_proj, p + w.b_proj, x_out, M, C_, hidden_,
                  Epilogue::kBias, true);
}

void TransformerBlock::Forward(const float* p, float* x, const CachedCall& call,
                               const LayerCache& cache) {
  Kernels& k = *kernels_;
  const int64_t M = call.batch->M;
  const BlockWeights& w = weights_;
  // One normalisation buffer serves both LayerNorms: nothing is kept.
  k.LayerNormForward(x, p + w.ln1_w, p + w.ln1_b, ln1_.data(), ln1_mean_.data(),
                     ln1_rstd_.data(), M, C_);
  attention_.Forward(p, ln1_.data(), x, call, cache);
  k.LayerNormForward(x, p + w.ln2_w, p + w.ln2_b, ln1_.data(), ln1_mean_.data(),
                     ln1_rstd_.data(), M, C_);
  k.LinearForward(ln1_.data(), p + w.w_fc, p + w.b_fc, fc_act_.data(), M, hidden_, C_,
                  Epilogue::kBiasGelu, false);
  k.LinearForward(fc_act_.data(), p + w.w_proj, p + w.b_proj, x, M, C_, hidden_, Epilogue::kBias,
                  true);
}

void TransformerBlock::Backward(const float* p, float* g, const float* x_in, float* d_res, int B,
                                int T, BlockScratch* s) {
  Kernels& k = *kernels_;
  const int64_t M = static_cast<int64_t>(B) * T;
  const BlockWeights& w = weights_;
  float* d_fc = s->d_fc.data();
  float* d_ln = s->d_ln.data();
  if (k.fuses_gelu_epilogues()) {
    k.LinearBackward(fc_act_.data(), p + w.w_proj, d_res, nullptr, g + w.w_proj, g + w.b_proj, M,
                     C_, hidden_, false);
    k.LinearBackwardDGelu(d_res, p + w.w_proj, fc_pre_.data(), d_fc, g + w.b_fc, M, C_, hidden_);
    k.LinearBackward(ln2_.data(), p + w.w_fc, d_fc, d_ln, g + w.w_fc, nullptr, M, hidden_, C_,
                     false);
  } else {
    k.LinearBackward(fc_act_.data(), p + w.w_proj, d_res, d_fc, g + w.w_proj, g + w.b_proj, M,
                     C_, hidden_, false);
    k.GeluBackward(fc_pre_.data(), d_fc, d_fc, M * hidden_);
    k.LinearBackward(ln2_.data(), p + w.w_fc, d_fc, d_ln, g + w.w_fc, g + w.b_fc, M, hidden_, C_,
                     false);
  }
  k.LayerNormBackward(d_ln, x_mid_.data(), p + w.ln2_w, ln2_mean_.data(), ln2_rstd_.data(), d_res,
                      g + w.ln2_w, g + w.ln2_b, M, C_);
  attention_.Backward(p, g, ln1_.data(), d_res, d_ln, B, T, &s->attn);
  k.LayerNormBackward(d_ln, x_in, p + w.ln1_w, ln1_mean_.data(), ln1_rstd_.data(), d_res,
                      g + w.ln1_w, g + w.ln1_b, M, C_);
}

}  // namespace mla

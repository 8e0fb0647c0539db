#include "runtime/decoder.h"

#include <algorithm>
#include <chrono>
#include <deque>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace mla {
absl::StatusOr<DecodeMode> ParseDecodeMode(absl::string_view name) {
  if (name == "absorbed") return DecodeMode::kAbsorbed;
  if (name == "naive") return DecodeMode::kNaive;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown decode mode '", name, "' (expected absorbed or naive)"));
}

absl::string_view DecodeModeName(DecodeMode mode) {
  return mode == DecodeMode::kAbsorbed ? "absorbed" : "naive";
}

absl::string_view StopReasonName(StopReason reason) {
  switch (reason) {
    case StopReason::kEos: return "eos";
    case StopReason::kLength: return "length";
    case StopReason::kContext: return "context";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<Decoder>> Decoder::Create(GptModel& model, Kernels* kernels,
                                                         const DecoderOptions& options) {
  const int ctx = model.config().context_length;
  DecoderOptions o = options;
  if (o.max_len == 0) o.max_len = ctx;
  if (o.max_batch < 1)
    return absl::InvalidArgumentError(absl::StrCat("max_batch must be >= 1, got ", o.max_batch));
  if (o.max_len < 1 || o.max_len > ctx)
    return absl::InvalidArgumentError(
        absl::StrCat("max_len must be in [1, context ", ctx, "], got ", o.max_len));
  if (o.max_rows < o.max_batch)
    return absl::InvalidArgumentError(absl::StrCat(
        "max_rows (", o.max_rows, ") must be >= max_batch (", o.max_batch, ")"));
  if (kernels == nullptr) return absl::InvalidArgumentError("the decoder needs kernels");
  if (model.kernels()->is_host() != kernels->is_host())
    return absl::InvalidArgumentError(absl::StrCat(
        "the model's parameters are in ", model.kernels()->is_host() ? "host" : "GPU",
        " memory but the decoder's kernels run on ", kernels->is_host() ? "the host" : "a GPU",
        "; create the model and the decoder on the same kernels"));
  if (model.kernels() != kernels)
    return absl::InvalidArgumentError(
        "the decoder runs on the model's kernels; create the model and the decoder on the same "
        "kernels");
  return std::unique_ptr<Decoder>(new Decoder(model, o));
}

Decoder::Decoder(GptModel& model, const DecoderOptions& options)
    : model_(model),
      options_(options),
      config_(model.config()),
      cache_(model.config(), options.max_batch, options.max_len, model.kernels()),
      table_(model.kernels()) {
  const int64_t M = options_.max_rows, B1 = options_.max_batch + 1;
  host_table_.assign(static_cast<size_t>(2 * M + 3 * B1), 0);
  table_.Resize(static_cast<int64_t>(host_table_.size()));
  const int32_t* h = host_table_.data();
  const int32_t* d = table_.data();
  batch_.host = {h + M, h + M + B1, h + M + 2 * B1, h + M + 3 * B1};
  batch_.device = {d + M, d + M + B1, d + M + 2 * B1, d + M + 3 * B1};
  model_.ReserveCached(M, options_.max_batch);
  if (!model_.kernels()->is_host())
    logits_on_host_.resize(static_cast<size_t>(M) * config_.vocab_size);
}

void Decoder::Forward(absl::Span<const DecodeSegment> segments, bool all_logits) {
  const ModelConfig& c = config_;
  const int nseg = static_cast<int>(segments.size());
  CHECK(nseg >= 1 && nseg <= options_.max_batch) << nseg << " segments";
  // The host table as laid out in the constructor (batch_.host points here).
  const int64_t M = options_.max_rows, B1 = options_.max_batch + 1;
  int32_t* tokens = host_table_.data();
  int32_t* slot = tokens + M;
  int32_t* row0 = slot + B1;
  int32_t* pos0 = row0 + B1;
  int32_t* pos = pos0 + B1;
  int64_t rows = 0;
  int max_len = 0;
  for (int k = 0; k < nseg; ++k) {
    const DecodeSegment& s = segments[k];
    CHECK(s.slot >= 0 && s.slot < options_.max_batch) << "slot " << s.slot;
    CHECK_GE(s.n, 1);
    const int p0 = cache_.length(s.slot);
    CHECK_LE(p0 + s.n, options_.max_len) << "slot " << s.slot << " would overflow the cache";
    CHECK_LE(rows + s.n, M) << "more rows than max_rows";
    for (int j = 0; j < k; ++j) CHECK_NE(slot[j], s.slot) << "slot used twice in one call";
    slot[k] = s.slot;
    row0[k] = static_cast<int32_t>(rows);
    pos0[k] = p0;
    for (int i = 0; i < s.n; ++i) {
      CHECK(s.tokens[i] >= 0 && s.tokens[i] < c.vocab_size) << "token " << s.tokens[i];
      tokens[rows + i] = s.tokens[i];
      pos[rows + i] = p0 + i;
    }
    rows += s.n;
    max_len = std::max(max_len, p0 + s.n);
  }
  row0[nseg] = static_cast<int32_t>(rows);
  batch_.S = nseg;
  batch_.M = rows;
  batch_.max_len = max_len;
  // One upload of the tables per call (a memcpy on the host).
  table_.CopyFromHost(host_table_.data(), static_cast<int64_t>(host_table_.size()));
  model_.Forward(table_.data(), batch_, cache_, options_.mode, all_logits);
  const int64_t out_rows = all_logits ? rows : nseg;
  if (!model_.kernels()->is_host())  // the one device → host copy of a step, for sampling
    model_.kernels()->CopyToHost(logits_on_host_.data(), model_.cached_logits(),
                                 static_cast<size_t>(out_rows * c.vocab_size) * sizeof(float));
  for (int s = 0; s < nseg; ++s) cache_.set_length(slot[s], pos0[s] + row0[s + 1] - row0[s]);
}

// Generation -----------------------------------------------------------------

namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

absl::Status ValidateRequest(const GenerationRequest& r, const ModelConfig& c, int max_len) {
  if (r.prompt.empty()) return absl::InvalidArgumentError("empty prompt");
  if (static_cast<int>(r.prompt.size()) >= max_len)
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt of ", r.prompt.size(), " tokens leaves no room in the context of ", max_len,
        " tokens"));
  for (int32_t t : r.prompt)
    if (t < 0 || t >= c.vocab_size)
      return absl::InvalidArgumentError(
          absl::StrCat("prompt token ", t, " is outside the vocabulary of ", c.vocab_size));
  if (r.max_new_tokens < 1)
    return absl::InvalidArgumentError(
        absl::StrCat("max_new_tokens must be >= 1, got ", r.max_new_tokens));
  return ValidateSamplingParams(r.sampling);
}

}  // namespace

std::vector<GenerationResult> Generate(Decoder& decoder,
                                       absl::Span<const GenerationRequest> requests, int eos_id,
                                       GenerationStats* stats) {
  const DecoderOptions& opt = decoder.options();
  const int V = decoder.config().vocab_size;
  KvCache& cache = decoder.cache();
  std::vector<GenerationResult> results(requests.size());
  std::deque<int> pending;
  for (size_t i = 0; i < requests.size(); ++i) {
    results[i].status = ValidateRequest(requests[i], decoder.config(), opt.max_len);
    if (results[i].status.ok()) pending.push_back(static_cast<int>(i));
  }
  GenerationStats local;
  GenerationStats& st = stats != nullptr ? *stats : local;
  Sampler sampler(V);
  std::vector<int> slot_request(opt.max_batch, -1);
  std::vector<int> prefilled(opt.max_batch, 0);  // prompt tokens already in the cache
  std::vector<Clock::time_point> started(opt.max_batch);
  std::vector<int32_t> next_token(opt.max_batch, 0);
  std::vector<DecodeSegment> segs;
  std::vector<int> seg_slots;
  segs.reserve(opt.max_batch);
  seg_slots.reserve(opt.max_batch);
  for (int s = 0; s < opt.max_batch; ++s) cache.Clear(s);

  // Records a sampled token for the request in `slot`; frees the slot when done.
  auto accept = [&](int slot, int token) {
    const int ri = slot_request[slot];
    GenerationResult& res = results[ri];
    bool done = false;
    if (token == eos_id) {
      res.stop = StopReason::kEos;
      done = true;
    } else {
      res.tokens.push_back(token);
      if (static_cast<int>(res.tokens.size()) >= requests[ri].max_new_tokens) {
        res.stop = StopReason::kLength;
        done = true;
      } else if (cache.length(slot) >= opt.max_len) {
        res.stop = StopReason::kContext;  // no position left to feed the token back
        done = true;
      }
    }
    if (done) {
      res.seconds = Since(started[slot]);
      slot_request[slot] = -1;
      cache.Clear(slot);
    } else {
      next_token[slot] = token;
    }
  };

  while (true) {
    // Admit waiting requests into free slots, then prefill every slot whose
    // prompt is not fully in the cache, in chunks of at most max_rows rows.
    for (int s = 0; s < opt.max_batch && !pending.empty(); ++s) {
      if (slot_request[s] >= 0) continue;
      slot_request[s] = pending.front();
      pending.pop_front();
      prefilled[s] = 0;
      started[s] = Clock::now();
    }
    while (true) {
      segs.clear();
      seg_slots.clear();
      int rows = 0;
      for (int s = 0; s < opt.max_batch && rows < opt.max_rows; ++s) {
        if (slot_request[s] < 0) continue;
        const auto& prompt = requests[slot_request[s]].prompt;
        const int left = static_cast<int>(prompt.size()) - prefilled[s];
        if (left <= 0) continue;
        const int n = std::min(left, opt.max_rows - rows);
        segs.push_back({s, n, prompt.data() + prefilled[s]});
        seg_slots.push_back(s);
        prefilled[s] += n;
        rows += n;
      }
      if (segs.empty()) break;
      const auto t0 = Clock::now();
      decoder.Forward(segs, false);
      st.prefill_seconds += Since(t0);
      st.prefill_tokens += rows;
      for (size_t k = 0; k < segs.size(); ++k) {
        const int s = seg_slots[k];
        const int ri = slot_request[s];
        if (prefilled[s] < static_cast<int>(requests[ri].prompt.size())) continue;
        accept(s, sampler.Sample(decoder.logits() + static_cast<int64_t>(k) * V,
                                 requests[ri].sampling, 0));
      }
    }
    // One decode step for every active slot.
    segs.clear();
    seg_slots.clear();
    for (int s = 0; s < opt.max_batch; ++s) {
      if (slot_request[s] < 0) continue;
      segs.push_back({s, 1, &next_token[s]});
      seg_slots.push_back(s);
    }
    if (segs.empty()) {
      if (pending.empty()) break;
      continue;
    }
    const auto t0 = Clock::now();
    decoder.Forward(segs, false);
    st.decode_seconds += Since(t0);
    st.decode_tokens += static_cast<int64_t>(segs.size());
    for (size_t k = 0; k < segs.size(); ++k) {
      const int s = seg_slots[k];
      const int ri = slot_request[s];
      accept(s, sampler.Sample(decoder.logits() + static_cast<int64_t>(k) * V,
                               requests[ri].sampling, results[ri].tokens.size()));
    }
  }
  return results;
}

}  // namespace mla

// mla-ckpt: inspect, compare, verify and export mlatrain checkpoints
// (docs/checkpoint-format.md). Reads with HDF5's POSIX driver, so it runs
// without mpirun. Tensors are streamed in blocks, so memory stays bounded
// whatever the checkpoint claims. Errors: one message on stderr, exit 2.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/cli.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/json.h"
#include "base/status_macros.h"
#include "checkpoint/commit.h"
#include "checkpoint/reader.h"
#include "glog/logging.h"
#include "runtime/model_checkpoint.h"
#include "runtime/model_config.h"
#include "runtime/parameter_layout.h"

ABSL_FLAG(std::string, format, "safetensors", "export: output format (only 'safetensors')");
ABSL_FLAG(std::string, out, "", "export: output file");
ABSL_FLAG(std::string, buffer, "model",
          "stats: which flat buffer to summarise: model, m (AdamW first moment) or v (second moment)");

namespace mla {
namespace {

using ckpt::CheckpointReader;
using ckpt::FlatBuffer;
using ckpt::TensorSpec;

constexpr int64_t kBlock = int64_t{1} << 20;  // floats per streamed read

absl::StatusOr<CheckpointReader> OpenSpec(const std::string& spec) {
  MLA_ASSIGN_OR_RETURN(std::string path, ckpt::ResolveCheckpoint(spec, spec));
  return CheckpointReader::Open(path);
}

std::string Shape(const std::vector<int64_t>& shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

// Calls fn(block) over a tensor's values, block by block.
absl::Status ForEachBlock(const CheckpointReader& r, FlatBuffer which, const TensorSpec& t,
                          const std::function<void(absl::Span<const float>)>& fn) {
  std::vector<float> block;
  for (int64_t lo = t.offset; lo < t.offset + t.numel(); lo += kBlock) {
    block.resize(static_cast<size_t>(std::min(kBlock, t.offset + t.numel() - lo)));
    MLA_RETURN_IF_ERROR(r.ReadRange(which, lo, absl::MakeSpan(block)));
    fn(block);
  }
  return absl::OkStatus();
}

absl::StatusOr<int> Ls(const std::string& spec) {
  MLA_ASSIGN_OR_RETURN(CheckpointReader r, OpenSpec(spec));
  std::printf("%s\n", r.path().c_str());
  std::printf("%-40s %-16s %-8s %12s\n", "tensor", "shape", "dtype", "bytes");
  for (const TensorSpec& t : r.layout())
    std::printf("%-40s %-16s %-8s %12lld\n", t.name.c_str(), Shape(t.shape).c_str(), "float32",
                static_cast<long long>(t.numel() * 4));
  std::printf("%zu tensors, %lld parameters, %lld bytes each in /model, /optim/adamw/m, /optim/adamw/v\n",
              r.layout().size(), static_cast<long long>(r.total()), static_cast<long long>(r.total() * 4));
  for (const std::string& name : r.state_names()) {
    MLA_ASSIGN_OR_RETURN(std::vector<int64_t> v, r.ReadState(name));
    std::printf("/state/%-33s [%zu] int64\n", name.c_str(), v.size());
  }
  MLA_ASSIGN_OR_RETURN(std::string tok, r.ReadTokenizerModel());
  std::printf("/tokenizer/model %zu bytes uint8\n", tok.size());
  return 0;
}

absl::StatusOr<int> Show(const std::string& spec) {
  MLA_ASSIGN_OR_RETURN(CheckpointReader r, OpenSpec(spec));
  const ckpt::CheckpointHeader& h = r.header();
  std::printf("checkpoint       %s\nformat           %s v%lld\nstep             %lld\n"
              "tokens_seen      %lld\nwritten by       %lld ranks, ZeRO stage %lld\n"
              "created          %s\nmlatrain         %s (git %s)\n",
              r.path().c_str(), ckpt::kFormatName, static_cast<long long>(ckpt::kFormatVersion),
              static_cast<long long>(h.step), static_cast<long long>(h.tokens_seen),
              static_cast<long long>(h.world_size), static_cast<long long>(h.zero_stage),
              h.created_utc.c_str(), h.mlatrain_version.c_str(), h.git_revision.c_str());
  std::printf("integrity        %lld bytes, xxh3-64/1MiB digest %016llx (checked)\n",
              static_cast<long long>(r.integrity().file_bytes),
              static_cast<unsigned long long>(r.integrity().digest));
  const ckpt::AdamWScalars& a = r.adamw();
  std::printf("adamw            t=%lld beta1=%g beta2=%g eps=%g weight_decay=%g\n",
              static_cast<long long>(a.step), a.beta1, a.beta2, a.eps, a.weight_decay);
  // The model fields in the schema's order, then every other entry (the
  // training flags) in file order.
  std::printf("model:\n");
  for (const ModelConfigField& f : ModelConfigFields()) {
    const ckpt::ConfigValue* v = r.FindConfig(f.name);
    std::printf("  %s=%s\n", std::string(f.name).c_str(),
                v == nullptr ? "(absent)" : ckpt::ConfigValueToString(*v).c_str());
  }
  std::printf("config:\n");
  for (const ckpt::ConfigEntry& e : r.config())
    if (FindModelConfigField(e.key) == nullptr)
      std::printf("  %s=%s\n", e.key.c_str(), ckpt::ConfigValueToString(e.value).c_str());
  std::printf("state:\n");
  for (const std::string& name : r.state_names()) {
    MLA_ASSIGN_OR_RETURN(std::vector<int64_t> v, r.ReadState(name));
    const size_t shown = std::min<size_t>(v.size(), 16);
    std::printf("  %s=[%s%s]\n", name.c_str(), absl::StrJoin(v.begin(), v.begin() + shown, ", ").c_str(),
                v.size() > shown ? ", ..." : "");
  }
  MLA_ASSIGN_OR_RETURN(std::string tok, r.ReadTokenizerModel());
  std::printf("tokenizer        %zu bytes\n", tok.size());
  return 0;
}

absl::StatusOr<FlatBuffer> BufferFlag() {
  const std::string b = absl::GetFlag(FLAGS_buffer);
  if (b == "model") return FlatBuffer::kParams;
  if (b == "m") return FlatBuffer::kAdamM;
  if (b == "v") return FlatBuffer::kAdamV;
  return absl::InvalidArgumentError(absl::StrCat("--buffer=", b, ": expected model, m or v"));
}

absl::StatusOr<int> Stats(const std::string& spec) {
  MLA_ASSIGN_OR_RETURN(FlatBuffer which, BufferFlag());
  MLA_ASSIGN_OR_RETURN(CheckpointReader r, OpenSpec(spec));
  std::printf("%s %s\n", r.path().c_str(), std::string(ckpt::FlatBufferGroup(which)).c_str());
  std::printf("tensor\tnumel\tmean\tstd\tmin\tmax\tnonfinite\n");
  for (const TensorSpec& t : r.layout()) {
    double sum = 0, sumsq = 0, lo = INFINITY, hi = -INFINITY;
    int64_t finite = 0, nonfinite = 0;
    MLA_RETURN_IF_ERROR(ForEachBlock(r, which, t, [&](absl::Span<const float> xs) {
      for (float x : xs) {
        if (!std::isfinite(x)) {
          ++nonfinite;
          continue;
        }
        ++finite;
        sum += x;
        sumsq += static_cast<double>(x) * x;
        lo = std::min<double>(lo, x);
        hi = std::max<double>(hi, x);
      }
    }));
    // Mean and (population) std over the finite values.
    const double mean = finite ? sum / finite : NAN;
    const double var = finite ? std::max(0.0, sumsq / finite - mean * mean) : NAN;
    std::printf("%s\t%lld\t%.9g\t%.9g\t%.9g\t%.9g\t%lld\n", t.name.c_str(), static_cast<long long>(t.numel()),
                mean, std::sqrt(var), lo, hi, static_cast<long long>(nonfinite));
  }
  return 0;
}

absl::StatusOr<int> Diff(const std::string& spec_a, const std::string& spec_b) {
  MLA_ASSIGN_OR_RETURN(CheckpointReader a, OpenSpec(spec_a));
  MLA_ASSIGN_OR_RETURN(CheckpointReader b, OpenSpec(spec_b));
  bool differ = false;
  std::printf("A = %s\nB = %s\nconfig differences:\n", a.path().c_str(), b.path().c_str());
  std::map<std::string, std::pair<std::string, std::string>> keys;
  for (const auto& e : a.config()) keys[e.key].first = ckpt::ConfigValueToString(e.value);
  for (const auto& e : b.config()) keys[e.key].second = ckpt::ConfigValueToString(e.value);
  for (const auto& [key, v] : keys) {
    const bool in_a = a.FindConfig(key) != nullptr, in_b = b.FindConfig(key) != nullptr;
    if (in_a && in_b && v.first == v.second) continue;
    differ = true;
    std::printf("  %s: %s -> %s\n", key.c_str(), in_a ? v.first.c_str() : "(absent)",
                in_b ? v.second.c_str() : "(absent)");
  }
  if (a.header().step != b.header().step) {
    differ = true;
    std::printf("  step: %lld -> %lld\n", static_cast<long long>(a.header().step),
                static_cast<long long>(b.header().step));
  }
  std::printf("tensor\tbuffer\tmax_abs_diff\tmax_rel_diff\n");
  for (const TensorSpec& t : a.layout()) {
    auto it = std::find_if(b.layout().begin(), b.layout().end(), [&](const TensorSpec& u) { return u.name == t.name; });
    if (it == b.layout().end() || it->shape != t.shape) {
      differ = true;
      std::printf("%s\t-\t%s\n", t.name.c_str(),
                  it == b.layout().end() ? "only in A" : absl::StrCat("shape ", Shape(t.shape), " vs ", Shape(it->shape)).c_str());
      continue;
    }
    for (FlatBuffer which : {FlatBuffer::kParams, FlatBuffer::kAdamM, FlatBuffer::kAdamV}) {
      double max_abs = 0, max_rel = 0;
      std::vector<float> xb;
      for (int64_t lo = 0; lo < t.numel(); lo += kBlock) {
        const int64_t n = std::min(kBlock, t.numel() - lo);
        std::vector<float> xa(n);
        xb.resize(n);
        MLA_RETURN_IF_ERROR(a.ReadRange(which, t.offset + lo, absl::MakeSpan(xa)));
        MLA_RETURN_IF_ERROR(b.ReadRange(which, it->offset + lo, absl::MakeSpan(xb)));
        for (int64_t i = 0; i < n; ++i) {
          const double d = std::fabs(static_cast<double>(xa[i]) - xb[i]);
          const double scale = std::max(std::fabs(xa[i]), std::fabs(xb[i]));
          if (std::isnan(d)) {
            if (std::isnan(xa[i]) != std::isnan(xb[i])) max_abs = max_rel = INFINITY;
            continue;
          }
          max_abs = std::max(max_abs, d);
          if (scale > 0) max_rel = std::max(max_rel, d / scale);
        }
      }
      if (max_abs != 0) differ = true;
      std::printf("%s\t%s\t%.9g\t%.9g\n", t.name.c_str(), std::string(ckpt::FlatBufferGroup(which)).c_str(),
                  max_abs, max_rel);
    }
  }
  for (const TensorSpec& u : b.layout())
    if (std::none_of(a.layout().begin(), a.layout().end(), [&](const TensorSpec& t) { return t.name == u.name; })) {
      differ = true;
      std::printf("%s\t-\tonly in B\n", u.name.c_str());
    }
  std::printf(differ ? "checkpoints differ\n" : "checkpoints are identical\n");
  return differ ? 1 : 0;
}

// The model config the checkpoint's /config holds (runtime/model_checkpoint.h).
absl::StatusOr<ModelConfig> ModelConfigFrom(const CheckpointReader& r) {
  absl::StatusOr<ModelConfig> c = ModelConfigFromEntries(r.config());
  if (!c.ok())
    return absl::DataLossError(absl::StrCat("checkpoint ", r.path(), ": /config: ", c.status().message()));
  return c;
}

absl::StatusOr<int> Verify(const std::string& spec) {
  MLA_ASSIGN_OR_RETURN(std::string path, ckpt::ResolveCheckpoint(spec, spec));
  MLA_ASSIGN_OR_RETURN(CheckpointReader r, CheckpointReader::Open(path));
  MLA_ASSIGN_OR_RETURN(ModelConfig config, ModelConfigFrom(r));
  std::vector<TensorSpec> expected;
  for (const ckpt::TensorSpec& t : TensorSpecs(BuildParameterLayout(config))) expected.push_back(t);
  ckpt::VerifyReport report;
  MLA_RETURN_IF_ERROR(ckpt::VerifyCheckpoint(r, expected, &report));
  std::printf("%s: OK (format v%lld, digest of all %lld bytes good, %zu tensors match the config, "
              "%lld tensor datasets and %lld bytes read, no non-finite values)\n",
              path.c_str(), static_cast<long long>(ckpt::kFormatVersion),
              static_cast<long long>(r.integrity().file_bytes), expected.size(),
              static_cast<long long>(report.tensors_read), static_cast<long long>(report.bytes_read));
  return 0;
}

// safetensors: u64 little-endian header length, a JSON header (padded with
// spaces to a multiple of 8), then the tensors' bytes back to back.
absl::StatusOr<int> Export(const std::string& spec) {
  static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");
  if (absl::GetFlag(FLAGS_format) != "safetensors")
    return absl::InvalidArgumentError(absl::StrCat("--format=", absl::GetFlag(FLAGS_format),
                                                   " is not supported (only safetensors)"));
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) return absl::InvalidArgumentError("export needs --out=FILE");
  MLA_ASSIGN_OR_RETURN(CheckpointReader r, OpenSpec(spec));
  std::vector<std::string> meta = {
      absl::StrCat(json::Quote("format"), ":", json::Quote(ckpt::kFormatName)),
      absl::StrCat(json::Quote("step"), ":", json::Quote(absl::StrCat(r.header().step))),
      absl::StrCat(json::Quote("tokens_seen"), ":", json::Quote(absl::StrCat(r.header().tokens_seen))),
      absl::StrCat(json::Quote("mlatrain_version"), ":", json::Quote(r.header().mlatrain_version)),
      absl::StrCat(json::Quote("git_revision"), ":", json::Quote(r.header().git_revision))};
  for (const ckpt::ConfigEntry& e : r.config())
    meta.push_back(absl::StrCat(json::Quote(absl::StrCat("config.", e.key)), ":",
                                json::Quote(ckpt::ConfigValueToString(e.value))));
  std::vector<std::string> entries = {absl::StrCat(json::Quote("__metadata__"), ":{", absl::StrJoin(meta, ","), "}")};
  int64_t begin = 0;
  for (const TensorSpec& t : r.layout()) {
    const int64_t end = begin + t.numel() * 4;
    entries.push_back(absl::StrCat(json::Quote(t.name), ":{\"dtype\":\"F32\",\"shape\":[", absl::StrJoin(t.shape, ","),
                                   "],\"data_offsets\":[", begin, ",", end, "]}"));
    begin = end;
  }
  std::string header = absl::StrCat("{", absl::StrJoin(entries, ","), "}");
  header.append((8 - header.size() % 8) % 8, ' ');
  std::ofstream f(out, std::ios::binary | std::ios::trunc);
  if (!f) return absl::InternalError(absl::StrCat("cannot create ", out));
  const uint64_t n = header.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (const TensorSpec& t : r.layout())
    MLA_RETURN_IF_ERROR(ForEachBlock(r, FlatBuffer::kParams, t, [&](absl::Span<const float> xs) {
      f.write(reinterpret_cast<const char*>(xs.data()), static_cast<std::streamsize>(xs.size() * 4));
    }));
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("writing ", out, " failed"));
  std::printf("wrote %s: %zu tensors, %lld bytes of weights\n", out.c_str(), r.layout().size(),
              static_cast<long long>(begin));
  return 0;
}

absl::StatusOr<int> Run(const std::vector<std::string>& args) {
  auto need = [&](size_t n) -> absl::Status {
    if (args.size() != n + 1)
      return absl::InvalidArgumentError(absl::StrCat("'", args[0], "' takes ", n, " checkpoint argument(s); see --help"));
    return absl::OkStatus();
  };
  const std::string& cmd = args[0];
  if (cmd == "ls") return need(1).ok() ? Ls(args[1]) : need(1);
  if (cmd == "show") return need(1).ok() ? Show(args[1]) : need(1);
  if (cmd == "stats") return need(1).ok() ? Stats(args[1]) : need(1);
  if (cmd == "verify") return need(1).ok() ? Verify(args[1]) : need(1);
  if (cmd == "export") return need(1).ok() ? Export(args[1]) : need(1);
  if (cmd == "diff") return need(2).ok() ? Diff(args[1], args[2]) : need(2);
  return absl::InvalidArgumentError(absl::StrCat("unknown command '", cmd, "'; see --help"));
}

}  // namespace
}  // namespace mla

int main(int argc, char** argv) {
  mla::SetCommandLineUsage(
      "inspect, compare, verify and export mlatrain checkpoints.\n"
      "  mla-ckpt ls CKPT        tensors, shapes, dtypes, bytes\n"
      "  mla-ckpt show CKPT      step, provenance, file size and digest, AdamW scalars, config, state\n"
      "  mla-ckpt stats CKPT     per-tensor mean/std/min/max/non-finite (--buffer=model|m|v)\n"
      "  mla-ckpt diff A B       per-tensor max abs/rel difference and config differences;\n"
      "                          exit 0 identical, 1 different\n"
      "  mla-ckpt verify CKPT    whole-file digest, schema, shapes against the stored config,\n"
      "                          non-finite values; exit 0 only when all good\n"
      "  mla-ckpt export --format=safetensors --out=FILE CKPT   weights + config metadata\n"
      "CKPT is a checkpoint file, or a run directory (its 'latest' pointer, else the newest\n"
      "ckpt-<step>.h5). Every command first checks the file's size and digest (integrity header,\n"
      "docs/checkpoint-format.md) before parsing it. Errors print one message on stderr and exit 2.");
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  google::InitGoogleLogging(argv[0]);
  if (positional.size() < 2) {
    std::fprintf(stderr, "mla-ckpt: missing command; see --help\n");
    return 2;
  }
  std::vector<std::string> args(positional.begin() + 1, positional.end());
  absl::StatusOr<int> rc = mla::Run(args);
  if (!rc.ok()) {
    std::fprintf(stderr, "mla-ckpt %s: %s\n", args[0].c_str(), std::string(rc.status().message()).c_str());
    return 2;
  }
  return *rc;
}

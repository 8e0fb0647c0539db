// mla-bench-ckpt: save and load throughput of a paper-scale checkpoint
// (parameters + AdamW m and v of the default ModelConfig, ~30M parameters,
// ~360 MB) against plain write()+fsync / read() of the same bytes in the same
// directory, measured in the same run. Run under mpirun with 1 or more ranks;
// each rank saves its ZeRO-1 shard of m and v and 1/N of the parameters, and
// loads back its 1/N of each buffer (the load includes Open's integrity pass,
// which reads and hashes the whole file on every rank). Before every read pass
// the files' pages are dropped from the page cache with
// posix_fadvise(DONTNEED) (dropping all caches needs root); whether that took
// effect shows in the read figures. The integrity pass alone is timed too,
// with the file cached.
#include <fcntl.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <vector>

#include "base/cli.h"
#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "checkpoint/commit.h"
#include "checkpoint/integrity.h"
#include "checkpoint/reader.h"
#include "checkpoint/writer.h"
#include "glog/logging.h"
#include "runtime/model_checkpoint.h"
#include "runtime/model_config.h"
#include "runtime/parameter_layout.h"

ABSL_FLAG(std::string, dir, "/tmp/mla-bench-ckpt", "directory to write the checkpoints and the raw file in (removed after)");
ABSL_FLAG(int, repeats, 3, "timed repetitions of each measurement; the median is reported");
ABSL_FLAG(bool, drop_cache, true, "posix_fadvise(DONTNEED) the files before each read pass");

namespace mla {
namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Wall time of fn across all ranks: from a common barrier to the last rank done.
template <typename Fn>
double Timed(Fn fn) {
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = Now();
  fn();
  MPI_Barrier(MPI_COMM_WORLD);
  return Now() - t0;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void DropCache(const std::string& path) {
  if (!absl::GetFlag(FLAGS_drop_cache)) return;
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

// Rank r writes/reads bytes [off, off + n) of one shared file in 4 MiB calls.
void RawWrite(const std::string& path, const char* data, int64_t off, int64_t n) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0644);
  CHECK_GE(fd, 0) << path;
  for (int64_t done = 0; done < n;) {
    const ssize_t w = ::pwrite(fd, data + done, static_cast<size_t>(std::min<int64_t>(n - done, 4 << 20)), off + done);
    CHECK_GT(w, 0) << "write " << path;
    done += w;
  }
  CHECK_EQ(::fsync(fd), 0);
  ::close(fd);
}

void RawRead(const std::string& path, char* data, int64_t off, int64_t n) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  CHECK_GE(fd, 0) << path;
  for (int64_t done = 0; done < n;) {
    const ssize_t r = ::pread(fd, data + done, static_cast<size_t>(std::min<int64_t>(n - done, 4 << 20)), off + done);
    CHECK_GT(r, 0) << "read " << path;
    done += r;
  }
  ::close(fd);
}

int Main() {
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  const std::string dir = absl::GetFlag(FLAGS_dir);
  const ModelConfig config;  // the paper scale: 9 layers, d=512, 8 heads, vocab 4096
  std::vector<ckpt::TensorSpec> layout;
  for (const ckpt::TensorSpec& t : TensorSpecs(BuildParameterLayout(config))) layout.push_back(t);
  const int64_t total = layout.back().offset + layout.back().numel();
  const ckpt::FlatRange mine = ckpt::EvenShard(total, rank, world);

  // Random values: what a trained state looks like to the disk.
  std::vector<float> params(mine.size()), m(mine.size()), v(mine.size());
  std::mt19937 rng(1234 + rank);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (int64_t i = 0; i < mine.size(); ++i) {
    params[i] = normal(rng);
    m[i] = normal(rng) * 0.1f;
    v[i] = std::abs(normal(rng)) * 1e-3f;
  }
  const int64_t payload = 3 * total * 4;  // bytes of the three buffers, all ranks
  if (rank == 0) {
    CHECK(ckpt::MakeDirs(dir).ok());
    std::printf("mla-bench-ckpt: %d rank(s), %lld parameters, %zu tensors, payload %.1f MB, dir %s\n",
                world, static_cast<long long>(total), layout.size(), payload / 1e6, dir.c_str());
  }
  MPI_Barrier(MPI_COMM_WORLD);

  // Raw: this rank's three slices, back to back at its place in one file.
  const std::string raw = dir + "/raw.bin";
  std::vector<char> buf(3 * static_cast<size_t>(mine.size()) * 4);
  for (int k = 0; k < 3; ++k) {
    const std::vector<float>& src = k == 0 ? params : k == 1 ? m : v;
    std::copy_n(reinterpret_cast<const char*>(src.data()), src.size() * 4, buf.data() + k * src.size() * 4);
  }
  const int64_t raw_off = 3 * mine.lo * 4, raw_n = static_cast<int64_t>(buf.size());
  std::vector<double> raw_w, raw_r, save_t, load_t, digest_t;
  std::string path;
  ckpt::CheckpointState state;
  state.header.step = 1;
  state.header.zero_stage = 1;
  state.config = {{"d_model", int64_t{config.d_model}}, {"n_layer", int64_t{config.n_layer}}};
  state.layout = layout;
  state.params = {mine.lo, params};
  state.adam_m = {mine.lo, m};
  state.adam_v = {mine.lo, v};
  ckpt::SaveOptions options;
  options.dir = dir;
  options.keep_last = 1;
  std::vector<float> back(mine.size());
  for (int rep = 0; rep < absl::GetFlag(FLAGS_repeats); ++rep) {
    if (rank == 0) std::filesystem::remove(raw);
    raw_w.push_back(Timed([&] { RawWrite(raw, buf.data(), raw_off, raw_n); }));
    DropCache(raw);
    raw_r.push_back(Timed([&] { RawRead(raw, buf.data(), raw_off, raw_n); }));
    save_t.push_back(Timed([&] {
      absl::StatusOr<std::string> saved = ckpt::SaveCheckpoint(MPI_COMM_WORLD, state, options);
      CHECK(saved.ok()) << saved.status();
      path = *saved;
    }));
    DropCache(path);
    load_t.push_back(Timed([&] {
      absl::StatusOr<ckpt::CheckpointReader> r = ckpt::CheckpointReader::Open(path);
      CHECK(r.ok()) << r.status();
      for (auto which : {ckpt::FlatBuffer::kParams, ckpt::FlatBuffer::kAdamM, ckpt::FlatBuffer::kAdamV})
        CHECK(r->ReadRange(which, mine.lo, absl::MakeSpan(back)).ok());
    }));
    CHECK(std::equal(back.begin(), back.end(), v.begin())) << "loaded v differs from saved v";
    // The integrity pass alone (what Open does before HDF5), file now cached.
    digest_t.push_back(Timed([&] { CHECK(ckpt::CheckFileIntegrity(path).ok()); }));
    state.header.step += 1;  // a new file each time; retention deletes the old one
  }
  if (rank == 0) {
    const double mb = payload / 1e6;
    const double w = mb / Median(raw_w), r = mb / Median(raw_r), s = mb / Median(save_t), l = mb / Median(load_t);
    const double file_mb = std::filesystem::file_size(path) / 1e6;
    std::printf("file size %.1f MB (payload %.1f MB)\n", file_mb, mb);
    std::printf("raw write+fsync  %8.1f MB/s\nsave             %8.1f MB/s  (%.0f%% of raw write)\n", w, s, 100 * s / w);
    std::printf("raw read         %8.1f MB/s\nload             %8.1f MB/s  (%.0f%% of raw read)\n", r, l, 100 * l / r);
    std::printf("digest check     %8.1f MB/s  (every rank reads and hashes the whole %.1f MB file, page cache)\n",
                file_mb / Median(digest_t), file_mb);
    std::printf("reads %s\n", absl::GetFlag(FLAGS_drop_cache)
                                  ? "after posix_fadvise(DONTNEED) of the file (uncached unless the kernel kept pages)"
                                  : "from the page cache (just written)");
    std::filesystem::remove_all(dir);
  }
  return 0;
}

}  // namespace
}  // namespace mla

int main(int argc, char** argv) {
  mla::ParseCommandLineWithUsage(
      argc, argv,
      "save/load throughput of a paper-scale checkpoint vs raw write/read of the same bytes.\n"
      "  mpirun -np N mla-bench-ckpt [--dir=DIR] [--repeats=3] [--drop_cache=true]");
  MPI_Init(&argc, &argv);
  google::InitGoogleLogging(argv[0]);
  const int rc = mla::Main();
  MPI_Finalize();
  return rc;
}

#include "checkpoint/writer.h"

#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <ctime>
#include <set>

#include "absl/strings/str_cat.h"
#include "base/safe_output.h"
#include "base/status_macros.h"
#include "checkpoint/commit.h"
#include "checkpoint/hdf5_util.h"
#include "checkpoint/integrity.h"
#include "glog/logging.h"
#include "mla/version.h"

namespace mla::ckpt {
namespace {

// Every rank learns whether any rank failed; all return the lowest failing
// rank's error (prefixed by its rank), so collective phases end together.
absl::Status AgreeOverMpi(MPI_Comm comm, const absl::Status& local) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  int mine = local.ok() ? INT_MAX : rank, first = INT_MAX;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
  if (first == INT_MAX) return absl::OkStatus();
  std::string message = rank == first ? std::string(local.message()) : std::string();
  int header[2] = {static_cast<int>(local.code()), static_cast<int>(message.size())};
  MPI_Bcast(header, 2, MPI_INT, first, comm);
  message.resize(static_cast<size_t>(header[1]));
  MPI_Bcast(message.data(), header[1], MPI_CHAR, first, comm);
  return absl::Status(static_cast<absl::StatusCode>(header[0]),
                      absl::StrCat("rank ", first, ": ", message));
}

std::string BroadcastString(MPI_Comm comm, std::string value) {
  int size = static_cast<int>(value.size());
  MPI_Bcast(&size, 1, MPI_INT, 0, comm);
  value.resize(static_cast<size_t>(size));
  MPI_Bcast(value.data(), size, MPI_CHAR, 0, comm);
  return value;
}

// FNV-1a: a stable hash (absl::Hash is seeded per process) so ranks can
// compare what they were asked to write.
class Fnv {
 public:
  void Add(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h_ = (h_ ^ p[i]) * 1099511628211ull;
  }
  void Add(absl::string_view s) {
    Add(s.size());
    Add(s.data(), s.size());
  }
  template <typename T>
  void Add(const T& v) requires std::is_arithmetic_v<T> { Add(&v, sizeof(v)); }
  // Add(value) for each value in turn.
  template <typename... Ts>
  void AddAll(const Ts&... values) { (Add(values), ...); }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 1469598103934665603ull;
};

uint64_t HashOfShared(const CheckpointState& s) {
  Fnv f;
  f.AddAll(s.header.step, s.header.tokens_seen, s.header.zero_stage);
  for (const ConfigEntry& e : s.config)
    f.AddAll(e.key, e.value.index(), ConfigValueToString(e.value));
  for (const TensorSpec& t : s.layout) {
    f.AddAll(t.name, t.offset);
    for (int64_t d : t.shape) f.Add(d);
  }
  f.AddAll(s.adamw.step, s.adamw.beta1, s.adamw.beta2, s.adamw.eps, s.adamw.weight_decay);
  for (const StateArray& a : s.state) {
    f.AddAll(a.name, a.values.size());
    f.Add(a.values.data(), a.values.size() * sizeof(int64_t));
  }
  f.Add(absl::string_view(s.tokenizer_model));
  return f.value();
}

bool ValidName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos;
}

absl::Status ValidateLocal(const CheckpointState& s, const SaveOptions& o) {
  if (o.dir.empty()) return absl::InvalidArgumentError("SaveOptions.dir is empty");
  if (o.keep_last < 1) return absl::InvalidArgumentError("keep_last must be at least 1");
  if (o.keep_every < 0) return absl::InvalidArgumentError("keep_every must be >= 0");
  if (s.header.step < 0) return absl::InvalidArgumentError("step must be >= 0");
  if (s.layout.empty()) return absl::InvalidArgumentError("the layout has no tensors");
  std::set<std::string> names;
  int64_t next = 0;
  for (const TensorSpec& t : s.layout) {
    if (!ValidName(t.name) || !names.insert(t.name).second)
      return absl::InvalidArgumentError(absl::StrCat("bad or duplicate tensor name '", t.name, "'"));
    if (t.shape.empty() || t.shape.size() > 2)
      return absl::InvalidArgumentError(absl::StrCat(t.name, ": only rank 1 and 2 are supported"));
    for (int64_t d : t.shape)
      if (d < 1) return absl::InvalidArgumentError(absl::StrCat(t.name, ": dims must be >= 1"));
    if (t.offset != next)
      return absl::InvalidArgumentError(absl::StrCat(t.name, ": offset ", t.offset, " where ",
                                                     next, " follows the previous tensor"));
    next += t.numel();
  }
  std::set<std::string> config_keys;
  for (const ConfigEntry& e : s.config)
    if (e.key.empty() || !config_keys.insert(e.key).second)
      return absl::InvalidArgumentError(absl::StrCat("bad or duplicate config key '", e.key, "'"));
  std::set<std::string> state_names;
  for (const StateArray& a : s.state) {
    if (!ValidName(a.name) || !state_names.insert(a.name).second)
      return absl::InvalidArgumentError(absl::StrCat("bad or duplicate state name '", a.name, "'"));
    if (static_cast<int64_t>(a.values.size()) > kMaxStateElements)
      return absl::InvalidArgumentError(absl::StrCat("state ", a.name, " is too large"));
  }
  if (static_cast<int64_t>(s.tokenizer_model.size()) > kMaxTokenizerBytes)
    return absl::InvalidArgumentError("the tokenizer model is too large");
  for (const FlatSlice* slice : {&s.params, &s.adam_m, &s.adam_v}) {
    const FlatRange r = slice->range();
    if (r.lo < 0 || r.hi > next)
      return absl::InvalidArgumentError(
          absl::StrCat("slice [", r.lo, ", ", r.hi, ") is outside the buffer [0, ", next, ")"));
  }
  return absl::OkStatus();
}

// The ranks' ranges of one buffer must tile [0, total) exactly once.
absl::Status CheckTiling(MPI_Comm comm, const FlatSlice& slice, int64_t total, absl::string_view what) {
  int world = 1;
  MPI_Comm_size(comm, &world);
  const FlatRange mine = slice.range();
  const int64_t local[2] = {mine.lo, mine.hi};
  std::vector<int64_t> all(2 * static_cast<size_t>(world));
  MPI_Allgather(local, 2, MPI_INT64_T, all.data(), 2, MPI_INT64_T, comm);
  std::vector<FlatRange> ranges;
  for (int r = 0; r < world; ++r)
    if (all[2 * r + 1] > all[2 * r]) ranges.push_back({all[2 * r], all[2 * r + 1]});
  std::sort(ranges.begin(), ranges.end(),
            [](const FlatRange& a, const FlatRange& b) { return a.lo < b.lo; });
  int64_t next = 0;
  for (const FlatRange& r : ranges) {
    if (r.lo != next)
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": the ranks' slices do not tile the buffer (", r.lo < next ? "overlap" : "gap",
          " at element ", std::min(r.lo, next), ")"));
    next = r.hi;
  }
  if (next != total)
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": the ranks' slices end at ", next, " but the buffer has ", total));
  return absl::OkStatus();
}

std::string UtcNow() {
  const std::time_t now = std::time(nullptr);
  std::tm tm;
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Writes the HDF5 file collectively. Each call is made by every rank in the
// same order; errors are agreed after every dataset so ranks stay in step.
class FileWriter {
 public:
  FileWriter(MPI_Comm comm, const AgreeFn& agree) : comm_(comm), agree_(agree) {
    MPI_Comm_rank(comm, &rank_);
  }

  absl::Status Create(const std::string& path) {
    MLA_ASSIGN_OR_RETURN(Hid fapl, Checked(H5Pcreate(H5P_FILE_ACCESS), "creating fapl"));
    MLA_RETURN_IF_ERROR(Checked(H5Pset_fapl_mpio(fapl.get(), comm_, MPI_INFO_NULL), "H5Pset_fapl_mpio"));
    // Metadata reads and writes done collectively: fewer small I/O calls.
    MLA_RETURN_IF_ERROR(Checked(H5Pset_all_coll_metadata_ops(fapl.get(), true), "fapl"));
    MLA_RETURN_IF_ERROR(Checked(H5Pset_coll_metadata_write(fapl.get(), true), "fapl"));
    // HDF5 leaves the userblock alone: the integrity header goes there.
    MLA_ASSIGN_OR_RETURN(Hid fcpl, Checked(H5Pcreate(H5P_FILE_CREATE), "creating fcpl"));
    MLA_RETURN_IF_ERROR(Checked(H5Pset_userblock(fcpl.get(), kHeaderBytes), "H5Pset_userblock"));
    MLA_ASSIGN_OR_RETURN(file_, Checked(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()),
                                        absl::StrCat("cannot create ", path)));
    MLA_ASSIGN_OR_RETURN(dxpl_, Checked(H5Pcreate(H5P_DATASET_XFER), "creating dxpl"));
    // Unfiltered contiguous datasets: each rank writes its own rectangles
    // straight to the file; collective buffering measured slower (docs/benchmarks.md).
    return Checked(H5Pset_dxpl_mpio(dxpl_.get(), H5FD_MPIO_INDEPENDENT), "H5Pset_dxpl_mpio");
  }

  hid_t file() const { return file_.get(); }

  // A group tracking link creation order, so h5py lists tensors in layout
  // order. Attributes are listed by name.
  absl::StatusOr<Hid> MakeGroup(const std::string& path) {
    MLA_ASSIGN_OR_RETURN(Hid gcpl, Checked(H5Pcreate(H5P_GROUP_CREATE), "creating gcpl"));
    MLA_RETURN_IF_ERROR(Checked(
        H5Pset_link_creation_order(gcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED), "gcpl"));
    return Checked(H5Gcreate2(file_.get(), path.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT),
                   absl::StrCat("creating group ", path));
  }

  // Creates a contiguous dataset of `dims` and writes the flat range [lo, hi)
  // of it from `data` (this rank's part; may be empty).
  absl::Status WriteFlat(hid_t group, const std::string& name, hid_t file_type, hid_t mem_type,
                         const std::vector<int64_t>& dims, int64_t elem_bytes, int64_t lo,
                         int64_t hi, const void* data, const ConfigValue* offset_attr) {
    MLA_ASSIGN_OR_RETURN(Hid dset, CreateDataset(group, name, file_type, dims));
    if (offset_attr != nullptr) MLA_RETURN_IF_ERROR(WriteAttr(dset.get(), kOffsetAttr, *offset_attr));
    // Every rank makes the same calls (one per rectangle slot), with an empty
    // selection where it has nothing, so the ranks stay in step.
    const std::array<Rect, 3> rects = SplitFlatRange(dims, lo, hi);
    static const int64_t kDummy = 0;  // a valid pointer for an empty selection
    for (int slot = 0; slot < 3; ++slot) {
      if (dims.size() == 1 && slot != 1) continue;
      const Rect& rect = rects[slot];
      Hid fspace, mspace;
      MLA_RETURN_IF_ERROR(RectSpaces(dset.get(), dims, rect, &fspace, &mspace));
      const void* src = rect.size() > 0
                            ? static_cast<const char*>(data) + (rect.flat_lo - lo) * elem_bytes
                            : static_cast<const void*>(&kDummy);
      MLA_RETURN_IF_ERROR(Checked(H5Dwrite(dset.get(), mem_type, mspace.get(), fspace.get(), dxpl_.get(), src),
                                  absl::StrCat("writing dataset ", name)));
    }
    return dset.Close();
  }

  absl::Status Agree(const absl::Status& local) { return agree_(local); }

  absl::Status Close() {
    dxpl_.Reset();
    return file_.Close();
  }

 private:
  // Contiguous and unfiltered: the integrity header's digest covers every
  // byte (format version 2), so there is no per-chunk checksum to compute,
  // and a flat range of a tensor is one contiguous range of the file.
  absl::StatusOr<Hid> CreateDataset(hid_t group, const std::string& name, hid_t file_type,
                                    const std::vector<int64_t>& dims) {
    const std::vector<hsize_t> cur(dims.begin(), dims.end());
    MLA_ASSIGN_OR_RETURN(Hid space, Checked(H5Screate_simple(static_cast<int>(cur.size()), cur.data(), nullptr),
                                            "creating a dataspace"));
    MLA_ASSIGN_OR_RETURN(Hid dcpl, Checked(H5Pcreate(H5P_DATASET_CREATE), "creating dcpl"));
    MLA_RETURN_IF_ERROR(Checked(H5Pset_layout(dcpl.get(), H5D_CONTIGUOUS), "H5Pset_layout"));
    // Every element is written, so filling the dataset first would be wasted I/O.
    MLA_RETURN_IF_ERROR(Checked(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), "H5Pset_fill_time"));
    return Checked(H5Dcreate2(group, name.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                   absl::StrCat("creating dataset ", name));
  }

  MPI_Comm comm_;
  const AgreeFn& agree_;
  int rank_ = 0;
  Hid file_;
  Hid dxpl_;
};

absl::Status WriteFile(MPI_Comm comm, const AgreeFn& agree, const CheckpointState& s,
                       const CheckpointHeader& header, const std::string& path) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  FileWriter w(comm, agree);
  MLA_RETURN_IF_ERROR(w.Agree(w.Create(path)));

  // Metadata: collective, identical on every rank.
  auto write_metadata = [&]() -> absl::Status {
    const hid_t root = w.file();
    MLA_RETURN_IF_ERROR(WriteAttr(root, "format", std::string(kFormatName)));
    MLA_RETURN_IF_ERROR(WriteAttr(root, "format_version", kFormatVersion));
    MLA_RETURN_IF_ERROR(WriteAttr(root, "step", header.step));
    MLA_RETURN_IF_ERROR(WriteAttr(root, "tokens_seen", header.tokens_seen));
    MLA_RETURN_IF_ERROR(WriteAttr(root, "world_size", header.world_size));
    MLA_RETURN_IF_ERROR(WriteAttr(root, "zero_stage", header.zero_stage));
    MLA_RETURN_IF_ERROR(WriteAttr(root, "created_utc", header.created_utc));
    MLA_RETURN_IF_ERROR(WriteAttr(root, "mlatrain_version", header.mlatrain_version));
    MLA_RETURN_IF_ERROR(WriteAttr(root, "git_revision", header.git_revision));
    MLA_ASSIGN_OR_RETURN(Hid config, w.MakeGroup(kConfigGroup));
    for (const ConfigEntry& e : s.config) MLA_RETURN_IF_ERROR(WriteAttr(config.get(), e.key, e.value));
    MLA_ASSIGN_OR_RETURN(Hid optim, w.MakeGroup("/optim"));
    MLA_ASSIGN_OR_RETURN(Hid adamw, w.MakeGroup(kAdamWGroup));
    MLA_RETURN_IF_ERROR(WriteAttr(adamw.get(), "step", s.adamw.step));
    MLA_RETURN_IF_ERROR(WriteAttr(adamw.get(), "beta1", s.adamw.beta1));
    MLA_RETURN_IF_ERROR(WriteAttr(adamw.get(), "beta2", s.adamw.beta2));
    MLA_RETURN_IF_ERROR(WriteAttr(adamw.get(), "eps", s.adamw.eps));
    MLA_RETURN_IF_ERROR(WriteAttr(adamw.get(), "weight_decay", s.adamw.weight_decay));
    return absl::OkStatus();
  };
  MLA_RETURN_IF_ERROR(w.Agree(write_metadata()));

  // The three flat buffers, tensor by tensor; each rank writes the part of
  // each tensor that its slice covers.
  struct Buffer {
    FlatBuffer which;
    const FlatSlice* slice;
  };
  for (const Buffer& b : {Buffer{FlatBuffer::kParams, &s.params}, Buffer{FlatBuffer::kAdamM, &s.adam_m},
                          Buffer{FlatBuffer::kAdamV, &s.adam_v}}) {
    absl::StatusOr<Hid> group = w.MakeGroup(std::string(FlatBufferGroup(b.which)));
    MLA_RETURN_IF_ERROR(w.Agree(group.status()));
    const FlatRange mine = b.slice->range();
    for (const TensorSpec& t : s.layout) {
      const int64_t lo = std::max(mine.lo, t.offset), hi = std::min(mine.hi, t.offset + t.numel());
      const float* data = hi > lo ? b.slice->values.data() + (lo - mine.lo) : nullptr;
      const ConfigValue offset(t.offset);
      MLA_RETURN_IF_ERROR(w.Agree(w.WriteFlat(group->get(), t.name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT,
                                              t.shape, 4, std::max<int64_t>(lo - t.offset, 0),
                                              std::max<int64_t>(hi - t.offset, 0), data, &offset)));
    }
  }

  // Small arrays: rank 0 writes the values, the others take part with nothing.
  absl::StatusOr<Hid> state = w.MakeGroup(kStateGroup);
  MLA_RETURN_IF_ERROR(w.Agree(state.status()));
  for (const StateArray& a : s.state) {
    const int64_t n = static_cast<int64_t>(a.values.size());
    MLA_RETURN_IF_ERROR(w.Agree(w.WriteFlat(state->get(), a.name, H5T_STD_I64LE, H5T_NATIVE_INT64, {n}, 8,
                                            0, rank == 0 ? n : 0, a.values.data(), nullptr)));
  }
  absl::StatusOr<Hid> tokenizer = w.MakeGroup("/tokenizer");
  MLA_RETURN_IF_ERROR(w.Agree(tokenizer.status()));
  const int64_t tn = static_cast<int64_t>(s.tokenizer_model.size());
  MLA_RETURN_IF_ERROR(w.Agree(w.WriteFlat(tokenizer->get(), "model", H5T_STD_U8LE, H5T_NATIVE_UINT8,
                                          {tn}, 1, 0, rank == 0 ? tn : 0, s.tokenizer_model.data(),
                                          nullptr)));
  state->Reset();
  tokenizer->Reset();
  return w.Agree(w.Close());
}

// Seals the closed file: rank 0 takes its size, every rank hashes an even
// share of the digest blocks (read back, usually from the page cache), rank 0
// combines the hashes and writes the integrity header.
absl::Status SealInParallel(MPI_Comm comm, const AgreeFn& agree, const std::string& path) {
  int rank = 0, world = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &world);
  int64_t file_bytes = 0;
  absl::Status st = absl::OkStatus();
  if (rank == 0) {
    struct stat info;
    if (::stat(path.c_str(), &info) != 0) {
      st = ErrnoError("cannot stat", path);
    } else {
      file_bytes = info.st_size;
      if (file_bytes < kHeaderBytes)
        st = absl::InternalError(absl::StrCat(path, " is shorter than its userblock after closing"));
    }
  }
  MLA_RETURN_IF_ERROR(agree(st));
  MPI_Bcast(&file_bytes, 1, MPI_INT64_T, 0, comm);
  const int64_t blocks = DigestBlockCount(file_bytes);
  const FlatRange mine = EvenShard(blocks, rank, world);
  absl::StatusOr<std::vector<uint64_t>> hashes = HashFileBlocks(path, file_bytes, mine.lo, mine.hi);
  MLA_RETURN_IF_ERROR(agree(hashes.status()));
  std::vector<int> counts(static_cast<size_t>(world)), displs(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) {
    const FlatRange theirs = EvenShard(blocks, r, world);
    counts[r] = static_cast<int>(theirs.size());
    displs[r] = static_cast<int>(theirs.lo);
  }
  std::vector<uint64_t> all(rank == 0 ? static_cast<size_t>(blocks) : 0);
  MPI_Gatherv(hashes->data(), static_cast<int>(hashes->size()), MPI_UINT64_T, all.data(), counts.data(),
              displs.data(), MPI_UINT64_T, 0, comm);
  if (rank == 0) st = WriteIntegrityHeader(path, {file_bytes, CombineBlockHashes(all)});
  return agree(st);
}

}  // namespace

absl::StatusOr<std::string> SaveCheckpoint(MPI_Comm comm, const CheckpointState& s,
                                           const SaveOptions& options) {
  SilenceHdf5Errors();
  int rank = 0, world = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &world);
  const std::string final_path = absl::StrCat(options.dir, "/", CheckpointFileName(s.header.step));
  const std::string tmp_path = final_path + kTmpSuffix;
  auto fail = [&](const absl::Status& st) {
    return absl::Status(st.code(), absl::StrCat("saving checkpoint ", final_path, ": ", st.message()));
  };

  const AgreeFn agree = options.agree ? options.agree : [comm](const absl::Status& local) {
    return AgreeOverMpi(comm, local);
  };

  // Phase 1: arguments, agreement between ranks, the directory.
  absl::Status st = agree(ValidateLocal(s, options));
  if (!st.ok()) return fail(st);
  const int64_t total = s.layout.back().offset + s.layout.back().numel();
  const uint64_t hash = HashOfShared(s);
  uint64_t lo_hash = 0, hi_hash = 0;
  MPI_Allreduce(&hash, &lo_hash, 1, MPI_UINT64_T, MPI_MIN, comm);
  MPI_Allreduce(&hash, &hi_hash, 1, MPI_UINT64_T, MPI_MAX, comm);
  if (lo_hash != hi_hash)
    return fail(absl::InvalidArgumentError(
        "ranks were given different metadata, layout, state arrays or tokenizer bytes"));
  for (auto [slice, what] : {std::pair{&s.params, "params"}, std::pair{&s.adam_m, "adamw m"},
                             std::pair{&s.adam_v, "adamw v"}}) {
    st = CheckTiling(comm, *slice, total, what);  // same verdict on every rank
    if (!st.ok()) return fail(st);
  }
  st = agree(rank == 0 ? MakeDirs(options.dir) : absl::OkStatus());
  if (!st.ok()) return fail(st);

  CheckpointHeader header = s.header;
  header.world_size = world;
  header.created_utc = BroadcastString(comm, UtcNow());
  header.mlatrain_version = MLA_VERSION;
  header.git_revision = MLA_GIT_REVISION;

  // Phase 2: the file, written collectively and sealed with its integrity
  // header; then each rank flushes what its own node cached (on a parallel
  // file system one fsync covers one client).
  st = WriteFile(comm, agree, s, header, tmp_path);
  if (st.ok()) st = SealInParallel(comm, agree, tmp_path);
  if (st.ok()) st = agree(FsyncPath(tmp_path, /*directory=*/false));
  if (!st.ok()) return fail(st);

  // Phase 3: commit on rank 0, result shared.
  absl::Status commit = absl::OkStatus();
  if (rank == 0) {
    commit = DurableRename(tmp_path, final_path);
    if (commit.ok())
      commit = WriteFileAtomically(absl::StrCat(options.dir, "/", kLatestFile),
                                   CheckpointFileName(s.header.step));
    if (commit.ok()) commit = ApplyRetention(options.dir, s.header.step, options.keep_last, options.keep_every);
  }
  st = agree(commit);
  if (!st.ok()) return fail(st);
  if (rank == 0) LOG(INFO) << "checkpoint saved: " << final_path;
  return final_path;
}

bool SaveLeftHdf5Damaged() { return Hdf5LibraryDamaged(); }

}  // namespace mla::ckpt

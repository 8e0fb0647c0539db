#include "checkpoint/reader.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "checkpoint/hdf5_util.h"
#include "checkpoint/integrity.h"

namespace mla::ckpt {

struct CheckpointReader::Handles {
  Hid file;
  Hid groups[3];  // /model, /optim/adamw/m, /optim/adamw/v
};

CheckpointReader::CheckpointReader() : h_(std::make_unique<Handles>()) {}
CheckpointReader::CheckpointReader(CheckpointReader&&) noexcept = default;
CheckpointReader& CheckpointReader::operator=(CheckpointReader&&) noexcept = default;
CheckpointReader::~CheckpointReader() = default;

absl::Status CheckpointReader::Error(const absl::Status& status) const {
  return absl::Status(status.code(), absl::StrCat("checkpoint ", path_, ": ", status.message()));
}

absl::StatusOr<CheckpointReader> CheckpointReader::Open(const std::string& path) {
  SilenceHdf5Errors();
  CheckpointReader reader;
  reader.path_ = path;
  absl::Status st = reader.Load();
  if (!st.ok()) return reader.Error(st);
  return reader;
}

namespace {

absl::Status Prefixed(absl::string_view where, const absl::Status& st) {
  if (st.ok()) return st;
  return absl::Status(st.code(), absl::StrCat(where, ": ", st.message()));
}

absl::StatusOr<int64_t> BoundedInt(hid_t obj, absl::string_view where, const std::string& name,
                                   int64_t lo, int64_t hi) {
  absl::StatusOr<int64_t> v = ReadIntAttr(obj, name);
  if (!v.ok()) return Prefixed(where, v.status());
  if (*v < lo || *v > hi)
    return absl::DataLossError(absl::StrCat(where, " attribute '", name, "' = ", *v,
                                            " is outside [", lo, ", ", hi, "]"));
  return *v;
}

absl::StatusOr<Hid> OpenGroup(hid_t file, const std::string& path) {
  if (!LinkExists(file, path))
    return absl::NotFoundError(absl::StrCat("required group ", path, " is missing"));
  return Checked(H5Gopen2(file, path.c_str(), H5P_DEFAULT), absl::StrCat("opening group ", path));
}

// Opens `group/name` and checks its element type and dims: rank in [1, 2],
// each dim and the element count bounded.
absl::StatusOr<Hid> OpenArray(hid_t group, const std::string& where, const std::string& name,
                              H5T_class_t klass, size_t elem_size, int64_t max_elements,
                              bool allow_empty, std::vector<int64_t>* dims_out) {
  const std::string full = absl::StrCat(where, "/", name);
  if (!LinkExists(group, name))
    return absl::NotFoundError(absl::StrCat("required dataset ", full, " is missing"));
  MLA_ASSIGN_OR_RETURN(Hid dset, Checked(H5Dopen2(group, name.c_str(), H5P_DEFAULT),
                                         absl::StrCat("opening dataset ", full)));
  MLA_ASSIGN_OR_RETURN(Hid type, Checked(H5Dget_type(dset.get()), absl::StrCat("type of ", full)));
  if (H5Tget_class(type.get()) != klass || H5Tget_size(type.get()) != elem_size)
    return absl::DataLossError(absl::StrCat(full, " has the wrong element type (expected ",
                                            klass == H5T_FLOAT ? "float" : "integer", " of ",
                                            elem_size, " bytes)"));
  absl::StatusOr<std::vector<int64_t>> dims = DatasetDims(dset.get(), 2);
  if (!dims.ok()) return Prefixed(full, dims.status());
  if (dims->empty()) return absl::DataLossError(absl::StrCat(full, " is a scalar, not an array"));
  int64_t n = 1;
  for (int64_t d : *dims) {
    if (d < (allow_empty ? 0 : 1) || d > max_elements || (d > 0 && n > max_elements / d))
      return absl::DataLossError(absl::StrCat(full, " has an absurd shape [", absl::StrJoin(*dims, ", "),
                                              "] (at most ", max_elements, " elements allowed)"));
    n *= d;
  }
  *dims_out = std::move(*dims);
  return dset;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

absl::Status CheckpointReader::Load() {
  // HDF5 parses nothing of a file whose digest does not match: its metadata
  // parsers can crash on damaged bytes.
  MLA_ASSIGN_OR_RETURN(integrity_, CheckFileIntegrity(path_));
  MLA_ASSIGN_OR_RETURN(h_->file, Checked(H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT),
                                         "cannot open as HDF5"));
  const hid_t root = h_->file.get();
  absl::StatusOr<std::string> format = ReadStringAttr(root, "format");
  if (!format.ok() || *format != kFormatName)
    return absl::DataLossError(absl::StrCat("not an mlatrain checkpoint (root attribute 'format' ",
                                            format.ok() ? absl::StrCat("is '", *format, "'")
                                                        : std::string(format.status().message()),
                                            ", expected '", kFormatName, "')"));
  MLA_ASSIGN_OR_RETURN(const int64_t version, BoundedInt(root, "root", "format_version", 0, INT64_MAX));
  if (version != kFormatVersion)
    return absl::FailedPreconditionError(absl::StrCat(
        "unknown format version ", version, " (this build reads version ", kFormatVersion, ")"));
  MLA_ASSIGN_OR_RETURN(header_.step, BoundedInt(root, "root", "step", 0, INT64_MAX));
  MLA_ASSIGN_OR_RETURN(header_.tokens_seen, BoundedInt(root, "root", "tokens_seen", 0, INT64_MAX));
  MLA_ASSIGN_OR_RETURN(header_.world_size, BoundedInt(root, "root", "world_size", 1, kMaxWorldSize));
  MLA_ASSIGN_OR_RETURN(header_.zero_stage, BoundedInt(root, "root", "zero_stage", 0, 3));
  for (auto [field, name] : {std::pair{&header_.created_utc, "created_utc"},
                             std::pair{&header_.mlatrain_version, "mlatrain_version"},
                             std::pair{&header_.git_revision, "git_revision"}}) {
    absl::StatusOr<std::string> v = ReadStringAttr(root, name);
    if (!v.ok()) return Prefixed("root", v.status());
    *field = std::move(*v);
  }

  MLA_ASSIGN_OR_RETURN(Hid config, OpenGroup(root, kConfigGroup));
  absl::StatusOr<std::vector<std::string>> keys = AttrNames(config.get(), kMaxConfigEntries);
  if (!keys.ok()) return Prefixed(kConfigGroup, keys.status());
  for (const std::string& key : *keys) {
    absl::StatusOr<ConfigValue> v = ReadConfigAttr(config.get(), key);
    if (!v.ok()) return Prefixed(kConfigGroup, v.status());
    config_.push_back({key, std::move(*v)});
  }

  MLA_ASSIGN_OR_RETURN(Hid adamw, OpenGroup(root, kAdamWGroup));
  MLA_ASSIGN_OR_RETURN(adamw_.step, BoundedInt(adamw.get(), kAdamWGroup, "step", 0, INT64_MAX));
  for (auto [field, name] : {std::pair{&adamw_.beta1, "beta1"}, std::pair{&adamw_.beta2, "beta2"},
                             std::pair{&adamw_.eps, "eps"}, std::pair{&adamw_.weight_decay, "weight_decay"}}) {
    absl::StatusOr<double> v = ReadDoubleAttr(adamw.get(), name);
    if (!v.ok()) return Prefixed(kAdamWGroup, v.status());
    *field = *v;
  }

  // The layout comes from /model: shapes and `offset` attributes, which must
  // tile the flat buffer; the moments must hold the same tensors.
  for (FlatBuffer which : {FlatBuffer::kParams, FlatBuffer::kAdamM, FlatBuffer::kAdamV}) {
    MLA_ASSIGN_OR_RETURN(h_->groups[static_cast<int>(which)],
                         OpenGroup(root, std::string(FlatBufferGroup(which))));
  }
  const hid_t model = h_->groups[0].get();
  absl::StatusOr<std::vector<std::string>> names = LinkNames(model, kMaxTensors);
  if (!names.ok()) return Prefixed(kModelGroup, names.status());
  if (names->empty()) return absl::DataLossError("/model holds no tensors");
  for (const std::string& name : *names) {
    TensorSpec t;
    t.name = name;
    MLA_ASSIGN_OR_RETURN(Hid dset, OpenArray(model, kModelGroup, name, H5T_FLOAT, 4, kMaxTensorElements,
                                             false, &t.shape));
    MLA_ASSIGN_OR_RETURN(t.offset, BoundedInt(dset.get(), absl::StrCat(kModelGroup, "/", name), kOffsetAttr,
                                              0, kMaxTensors * kMaxTensorElements));
    layout_.push_back(std::move(t));
  }
  std::sort(layout_.begin(), layout_.end(),
            [](const TensorSpec& a, const TensorSpec& b) { return a.offset < b.offset; });
  for (size_t i = 0; i < layout_.size(); ++i) {
    const TensorSpec& t = layout_[i];
    const std::string before = i == 0 ? "the start" : layout_[i - 1].name;
    if (t.offset > total_)
      return absl::DataLossError(absl::StrCat("/model is missing a tensor: elements [", total_, ", ", t.offset,
                                              ") between ", before, " and ", t.name, " are not covered"));
    if (t.offset < total_)
      return absl::DataLossError(absl::StrCat("/model/", t.name, " at offset ", t.offset, " overlaps ", before,
                                              ", which ends at ", total_));
    total_ += t.numel();
  }
  for (FlatBuffer which : {FlatBuffer::kAdamM, FlatBuffer::kAdamV}) {
    const hid_t group = h_->groups[static_cast<int>(which)].get();
    const std::string where(FlatBufferGroup(which));
    absl::StatusOr<std::vector<std::string>> moment_names = LinkNames(group, kMaxTensors);
    if (!moment_names.ok()) return Prefixed(where, moment_names.status());
    for (const TensorSpec& t : layout_) {
      std::vector<int64_t> dims;
      MLA_ASSIGN_OR_RETURN(Hid dset, OpenArray(group, where, t.name, H5T_FLOAT, 4, kMaxTensorElements,
                                               false, &dims));
      if (dims != t.shape)
        return absl::DataLossError(absl::StrCat(where, "/", t.name, " has shape ", ShapeString(dims),
                                                " but /model/", t.name, " has ", ShapeString(t.shape)));
    }
    if (moment_names->size() != names->size())
      return absl::DataLossError(absl::StrCat(where, " holds ", moment_names->size(), " tensors but /model holds ",
                                              names->size()));
  }

  MLA_ASSIGN_OR_RETURN(Hid state, OpenGroup(root, kStateGroup));
  absl::StatusOr<std::vector<std::string>> state_names = LinkNames(state.get(), kMaxStateArrays);
  if (!state_names.ok()) return Prefixed(kStateGroup, state_names.status());
  state_names_ = std::move(*state_names);
  for (const std::string& name : state_names_) {
    std::vector<int64_t> dims;
    MLA_ASSIGN_OR_RETURN(Hid dset, OpenArray(state.get(), kStateGroup, name, H5T_INTEGER, 8, kMaxStateElements,
                                             true, &dims));
    if (dims.size() != 1) return absl::DataLossError(absl::StrCat("/state/", name, " must be 1-D"));
  }
  MLA_ASSIGN_OR_RETURN(Hid tokenizer, OpenGroup(root, "/tokenizer"));
  std::vector<int64_t> dims;
  MLA_ASSIGN_OR_RETURN(Hid tok, OpenArray(tokenizer.get(), "/tokenizer", "model", H5T_INTEGER, 1,
                                          kMaxTokenizerBytes, true, &dims));
  if (dims.size() != 1) return absl::DataLossError("/tokenizer/model must be 1-D");
  return absl::OkStatus();
}

const ConfigValue* CheckpointReader::FindConfig(absl::string_view key) const {
  for (const ConfigEntry& e : config_)
    if (e.key == key) return &e.value;
  return nullptr;
}

absl::Status CheckpointReader::ExpectLayout(absl::Span<const TensorSpec> expected) const {
  for (size_t i = 0; i < expected.size(); ++i) {
    const TensorSpec& e = expected[i];
    if (i >= layout_.size())
      return Error(absl::FailedPreconditionError(
          absl::StrCat("tensor ", e.name, " is expected but the checkpoint has only ", layout_.size(), " tensors")));
    const TensorSpec& t = layout_[i];
    if (t.name != e.name)
      return Error(absl::FailedPreconditionError(absl::StrCat(
          "tensor #", i, " is ", t.name, " but ", e.name, " is expected (different model config?)")));
    if (t.shape != e.shape)
      return Error(absl::FailedPreconditionError(absl::StrCat(
          "tensor ", t.name, " has shape ", ShapeString(t.shape), " but the config gives ", ShapeString(e.shape))));
    if (t.offset != e.offset)
      return Error(absl::FailedPreconditionError(
          absl::StrCat("tensor ", t.name, " is at offset ", t.offset, " but ", e.offset, " is expected")));
  }
  if (layout_.size() != expected.size())
    return Error(absl::FailedPreconditionError(absl::StrCat("the checkpoint has ", layout_.size(),
                                                            " tensors but ", expected.size(), " are expected")));
  return absl::OkStatus();
}

absl::Status CheckpointReader::ReadRange(FlatBuffer which, int64_t lo, absl::Span<float> out) const {
  SilenceHdf5Errors();
  const int64_t hi = lo + static_cast<int64_t>(out.size());
  if (lo < 0 || hi > total_)
    return Error(absl::OutOfRangeError(
        absl::StrCat("range [", lo, ", ", hi, ") is outside the flat buffer [0, ", total_, ")")));
  const hid_t group = h_->groups[static_cast<int>(which)].get();
  auto it = std::upper_bound(layout_.begin(), layout_.end(), lo,
                             [](int64_t v, const TensorSpec& t) { return v < t.offset + t.numel(); });
  for (; it != layout_.end() && it->offset < hi; ++it) {
    const TensorSpec& t = *it;
    const int64_t a = std::max(lo, t.offset), b = std::min(hi, t.offset + t.numel());
    const std::string full = absl::StrCat(FlatBufferGroup(which), "/", t.name);
    absl::StatusOr<Hid> dset = Checked(H5Dopen2(group, t.name.c_str(), H5P_DEFAULT), absl::StrCat("opening ", full));
    if (!dset.ok()) return Error(dset.status());
    for (const Rect& rect : SplitFlatRange(t.shape, a - t.offset, b - t.offset)) {
      if (rect.size() == 0) continue;
      Hid fspace, mspace;
      absl::Status st = RectSpaces(dset->get(), t.shape, rect, &fspace, &mspace);
      if (!st.ok()) return Error(st);
      if (H5Dread(dset->get(), H5T_NATIVE_FLOAT, mspace.get(), fspace.get(), H5P_DEFAULT,
                  out.data() + (t.offset + rect.flat_lo - lo)) < 0)
        return Error(Hdf5Error(absl::StrCat("reading ", full, " elements [", rect.flat_lo, ", ",
                                            rect.flat_lo + rect.size(),
                                            ") failed")));
    }
  }
  return absl::OkStatus();
}

namespace {
template <typename T>
absl::StatusOr<std::vector<T>> ReadWhole(hid_t file, const std::string& path, hid_t mem_type,
                                         H5T_class_t klass, size_t elem_size, int64_t max_elements) {
  const size_t slash = path.rfind('/');
  const std::string group_path = path.substr(0, slash), name = path.substr(slash + 1);
  MLA_ASSIGN_OR_RETURN(Hid group, OpenGroup(file, group_path));
  std::vector<int64_t> dims;
  MLA_ASSIGN_OR_RETURN(Hid dset, OpenArray(group.get(), group_path, name, klass, elem_size, max_elements,
                                           true, &dims));
  if (dims.size() != 1) return absl::DataLossError(absl::StrCat(path, " must be 1-D"));
  std::vector<T> values(static_cast<size_t>(dims[0]));
  if (!values.empty() &&
      H5Dread(dset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0)
    return Hdf5Error(absl::StrCat("reading ", path, " failed"));
  return values;
}
}  // namespace

absl::StatusOr<std::vector<int64_t>> CheckpointReader::ReadState(const std::string& name) const {
  SilenceHdf5Errors();
  if (std::find(state_names_.begin(), state_names_.end(), name) == state_names_.end())
    return Error(absl::NotFoundError(absl::StrCat("no state array /state/", name)));
  absl::StatusOr<std::vector<int64_t>> v = ReadWhole<int64_t>(
      h_->file.get(), absl::StrCat(kStateGroup, "/", name), H5T_NATIVE_INT64, H5T_INTEGER, 8, kMaxStateElements);
  if (!v.ok()) return Error(v.status());
  return v;
}

absl::StatusOr<std::string> CheckpointReader::ReadTokenizerModel() const {
  SilenceHdf5Errors();
  absl::StatusOr<std::vector<char>> v = ReadWhole<char>(h_->file.get(), kTokenizerDataset, H5T_NATIVE_UINT8,
                                                        H5T_INTEGER, 1, kMaxTokenizerBytes);
  if (!v.ok()) return Error(v.status());
  return std::string(v->begin(), v->end());
}

absl::Status VerifyCheckpoint(const std::string& path, absl::Span<const TensorSpec> expected,
                              VerifyReport* report) {
  if (report != nullptr) *report = VerifyReport();
  MLA_ASSIGN_OR_RETURN(CheckpointReader reader, CheckpointReader::Open(path));
  return VerifyCheckpoint(reader, expected, report);
}

absl::Status VerifyCheckpoint(const CheckpointReader& reader, absl::Span<const TensorSpec> expected,
                              VerifyReport* report) {
  VerifyReport local;
  VerifyReport& r = report != nullptr ? *report : local;
  r = VerifyReport();
  const std::string& path = reader.path();
  if (!expected.empty()) MLA_RETURN_IF_ERROR(reader.ExpectLayout(expected));
  // Bounded memory whatever the tensor sizes: stream in blocks.
  constexpr int64_t kBlock = int64_t{1} << 20;
  std::vector<float> block;
  for (FlatBuffer which : {FlatBuffer::kParams, FlatBuffer::kAdamM, FlatBuffer::kAdamV}) {
    for (const TensorSpec& t : reader.layout()) {
      int64_t bad = 0;
      for (int64_t lo = t.offset; lo < t.offset + t.numel(); lo += kBlock) {
        const int64_t n = std::min(kBlock, t.offset + t.numel() - lo);
        block.resize(static_cast<size_t>(n));
        MLA_RETURN_IF_ERROR(reader.ReadRange(which, lo, absl::MakeSpan(block)));
        for (float x : block) bad += std::isfinite(x) ? 0 : 1;
        r.bytes_read += n * 4;
      }
      ++r.tensors_read;
      if (bad > 0) {
        r.nonfinite += bad;
        r.with_nonfinite.push_back({absl::StrCat(FlatBufferGroup(which), "/", t.name), bad});
      }
    }
  }
  for (const std::string& name : reader.state_names()) {
    MLA_ASSIGN_OR_RETURN(std::vector<int64_t> v, reader.ReadState(name));
    r.bytes_read += static_cast<int64_t>(v.size()) * 8;
  }
  MLA_ASSIGN_OR_RETURN(std::string tok, reader.ReadTokenizerModel());
  r.bytes_read += static_cast<int64_t>(tok.size());
  if (r.nonfinite > 0) {
    std::vector<std::string> where;
    for (const TensorCheck& c : r.with_nonfinite) where.push_back(absl::StrCat(c.group_and_name, " (", c.nonfinite, ")"));
    return absl::DataLossError(absl::StrCat("checkpoint ", path, ": ", r.nonfinite, " non-finite values in ",
                                            absl::StrJoin(where, ", ")));
  }
  return absl::OkStatus();
}

}  // namespace mla::ckpt

#include "checkpoint/hdf5_util.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace mla::ckpt {

Hid& Hid::operator=(Hid&& other) noexcept {
  if (this != &other) {
    Reset();
    id_ = other.id_;
    other.id_ = H5I_INVALID_HID;
  }
  return *this;
}

namespace {
bool hdf5_library_damaged = false;
}  // namespace

absl::Status Hid::Close() {
  if (!valid()) return absl::OkStatus();
  herr_t rc = 0;
  const H5I_type_t type = H5Iget_type(id_);
  switch (type) {
    case H5I_FILE: rc = H5Fclose(id_); break;
    case H5I_GROUP: rc = H5Gclose(id_); break;
    case H5I_DATASET: rc = H5Dclose(id_); break;
    case H5I_DATASPACE: rc = H5Sclose(id_); break;
    case H5I_DATATYPE: rc = H5Tclose(id_); break;
    case H5I_ATTR: rc = H5Aclose(id_); break;
    case H5I_GENPROP_LST: rc = H5Pclose(id_); break;
    default: rc = H5Idec_ref(id_); break;
  }
  const bool file = type == H5I_FILE;
  id_ = H5I_INVALID_HID;
  if (rc < 0) {
    // HDF5 1.10 keeps a file whose final flush failed in its ID table and
    // crashes closing it again at library shutdown; remember it.
    if (file) hdf5_library_damaged = true;
    return Hdf5Error("closing an HDF5 object failed");
  }
  return absl::OkStatus();
}

bool Hdf5LibraryDamaged() { return hdf5_library_damaged; }

void Hid::Reset() { Close().IgnoreError(); }

void SilenceHdf5Errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

namespace {
herr_t CollectInnermost(unsigned n, const H5E_error2_t* err, void* out) {
  auto* detail = static_cast<std::string*>(out);
  // Walking upward, entry 0 is the most specific error.
  if (n == 0 && err->desc != nullptr) *detail = err->desc;
  return 0;
}
}  // namespace

std::string Hdf5ErrorDetail() {
  std::string detail;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, CollectInnermost, &detail);
  return detail;
}

absl::Status Hdf5Error(absl::string_view what) {
  const std::string detail = Hdf5ErrorDetail();
  if (detail.empty()) return absl::DataLossError(what);
  return absl::DataLossError(absl::StrCat(what, " (HDF5: ", detail, ")"));
}

absl::StatusOr<Hid> Checked(hid_t id, absl::string_view what) {
  if (id < 0) return Hdf5Error(what);
  return Hid(id);
}

absl::Status Checked(herr_t rc, absl::string_view what) {
  if (rc < 0) return Hdf5Error(what);
  return absl::OkStatus();
}

bool LinkExists(hid_t loc, const std::string& path) {
  // Check each component so a missing parent is "absent", not an error.
  size_t pos = path[0] == '/' ? 1 : 0;
  while (true) {
    const size_t next = path.find('/', pos);
    const std::string prefix = path.substr(0, next);
    if (H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (next == std::string::npos) return true;
    pos = next + 1;
  }
}

bool AttrExists(hid_t obj, const std::string& name) {
  return H5Aexists(obj, name.c_str()) > 0;
}

namespace {

// HDF5 has no boolean type; h5py's convention is an int8 enum {FALSE, TRUE}.
absl::StatusOr<Hid> MakeBoolType() {
  MLA_ASSIGN_OR_RETURN(Hid type, Checked(H5Tenum_create(H5T_NATIVE_INT8), "creating bool type"));
  int8_t f = 0, t = 1;
  MLA_RETURN_IF_ERROR(Checked(H5Tenum_insert(type.get(), "FALSE", &f), "creating bool type"));
  MLA_RETURN_IF_ERROR(Checked(H5Tenum_insert(type.get(), "TRUE", &t), "creating bool type"));
  return type;
}

absl::Status WriteScalar(hid_t obj, const std::string& name, hid_t file_type, hid_t mem_type,
                         const void* value) {
  MLA_ASSIGN_OR_RETURN(Hid space, Checked(H5Screate(H5S_SCALAR), "creating a dataspace"));
  if (AttrExists(obj, name)) {
    MLA_RETURN_IF_ERROR(Checked(H5Adelete(obj, name.c_str()),
                                absl::StrCat("replacing attribute '", name, "'")));
  }
  MLA_ASSIGN_OR_RETURN(Hid attr, Checked(H5Acreate2(obj, name.c_str(), file_type, space.get(),
                                                    H5P_DEFAULT, H5P_DEFAULT),
                                         absl::StrCat("creating attribute '", name, "'")));
  MLA_RETURN_IF_ERROR(Checked(H5Awrite(attr.get(), mem_type, value),
                              absl::StrCat("writing attribute '", name, "'")));
  return attr.Close();
}

// Opens attribute `name` and checks it holds exactly one value.
absl::StatusOr<Hid> OpenScalarAttr(hid_t obj, const std::string& name) {
  if (!AttrExists(obj, name))
    return absl::NotFoundError(absl::StrCat("attribute '", name, "' is missing"));
  MLA_ASSIGN_OR_RETURN(Hid attr, Checked(H5Aopen(obj, name.c_str(), H5P_DEFAULT),
                                         absl::StrCat("opening attribute '", name, "'")));
  MLA_ASSIGN_OR_RETURN(Hid space, Checked(H5Aget_space(attr.get()), "reading attribute space"));
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n != 1)
    return absl::DataLossError(
        absl::StrCat("attribute '", name, "' must be a scalar but holds ", n, " values"));
  return attr;
}

}  // namespace

absl::Status WriteAttr(hid_t obj, const std::string& name, const ConfigValue& value) {
  if (const auto* i = std::get_if<int64_t>(&value))
    return WriteScalar(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, i);
  if (const auto* d = std::get_if<double>(&value))
    return WriteScalar(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, d);
  if (const auto* b = std::get_if<bool>(&value)) {
    MLA_ASSIGN_OR_RETURN(Hid type, MakeBoolType());
    const int8_t v = *b ? 1 : 0;
    return WriteScalar(obj, name, type.get(), type.get(), &v);
  }
  const std::string& s = std::get<std::string>(value);
  if (static_cast<int64_t>(s.size()) >= kMaxStringBytes)
    return absl::InvalidArgumentError(
        absl::StrCat("attribute '", name, "': string of ", s.size(), " bytes is too long"));
  MLA_ASSIGN_OR_RETURN(Hid type, Checked(H5Tcopy(H5T_C_S1), "creating string type"));
  MLA_RETURN_IF_ERROR(Checked(H5Tset_size(type.get(), s.size() + 1), "creating string type"));
  MLA_RETURN_IF_ERROR(Checked(H5Tset_strpad(type.get(), H5T_STR_NULLTERM), "creating string type"));
  MLA_RETURN_IF_ERROR(Checked(H5Tset_cset(type.get(), H5T_CSET_UTF8), "creating string type"));
  return WriteScalar(obj, name, type.get(), type.get(), s.c_str());
}

absl::StatusOr<ConfigValue> ReadConfigAttr(hid_t obj, const std::string& name) {
  MLA_ASSIGN_OR_RETURN(Hid attr, OpenScalarAttr(obj, name));
  MLA_ASSIGN_OR_RETURN(Hid type, Checked(H5Aget_type(attr.get()), "reading attribute type"));
  const std::string where = absl::StrCat("attribute '", name, "'");
  switch (H5Tget_class(type.get())) {
    case H5T_INTEGER: {
      int64_t v = 0;
      MLA_RETURN_IF_ERROR(Checked(H5Aread(attr.get(), H5T_NATIVE_INT64, &v),
                                  absl::StrCat("reading ", where)));
      return ConfigValue(v);
    }
    case H5T_FLOAT: {
      double v = 0;
      MLA_RETURN_IF_ERROR(Checked(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &v),
                                  absl::StrCat("reading ", where)));
      return ConfigValue(v);
    }
    case H5T_ENUM: {
      if (H5Tget_size(type.get()) != 1 || H5Tget_nmembers(type.get()) != 2)
        return absl::DataLossError(absl::StrCat(where, " is an enum that is not a bool"));
      MLA_ASSIGN_OR_RETURN(Hid mem, Checked(H5Tget_native_type(type.get(), H5T_DIR_ASCEND),
                                            "reading attribute type"));
      int8_t v = 0;
      MLA_RETURN_IF_ERROR(Checked(H5Aread(attr.get(), mem.get(), &v),
                                  absl::StrCat("reading ", where)));
      return ConfigValue(v != 0);
    }
    case H5T_STRING: {
      if (H5Tis_variable_str(type.get()) != 0)
        return absl::DataLossError(
            absl::StrCat(where, " is a variable-length string; the format uses fixed-length"));
      const size_t size = H5Tget_size(type.get());
      if (size == 0 || static_cast<int64_t>(size) > kMaxStringBytes)
        return absl::DataLossError(
            absl::StrCat(where, " claims a string of ", size, " bytes (limit ", kMaxStringBytes, ")"));
      std::string buf(size, '\0');
      MLA_RETURN_IF_ERROR(Checked(H5Aread(attr.get(), type.get(), buf.data()),
                                  absl::StrCat("reading ", where)));
      buf.resize(std::strlen(buf.c_str()));
      return ConfigValue(std::move(buf));
    }
    default:
      return absl::DataLossError(absl::StrCat(where, " has an unsupported type class"));
  }
}

absl::StatusOr<int64_t> ReadIntAttr(hid_t obj, const std::string& name) {
  MLA_ASSIGN_OR_RETURN(ConfigValue v, ReadConfigAttr(obj, name));
  if (const auto* i = std::get_if<int64_t>(&v)) return *i;
  return absl::DataLossError(absl::StrCat("attribute '", name, "' must be an integer"));
}

absl::StatusOr<double> ReadDoubleAttr(hid_t obj, const std::string& name) {
  MLA_ASSIGN_OR_RETURN(ConfigValue v, ReadConfigAttr(obj, name));
  if (const auto* d = std::get_if<double>(&v)) return *d;
  return absl::DataLossError(absl::StrCat("attribute '", name, "' must be a float"));
}

absl::StatusOr<std::string> ReadStringAttr(hid_t obj, const std::string& name) {
  MLA_ASSIGN_OR_RETURN(ConfigValue v, ReadConfigAttr(obj, name));
  if (auto* s = std::get_if<std::string>(&v)) return std::move(*s);
  return absl::DataLossError(absl::StrCat("attribute '", name, "' must be a string"));
}

namespace {
absl::StatusOr<std::string> NameByIndex(hid_t obj, bool attr, H5_index_t index, hsize_t i) {
  ssize_t len = attr ? H5Aget_name_by_idx(obj, ".", index, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT)
                     : H5Lget_name_by_idx(obj, ".", index, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
  if (len < 0) return Hdf5Error("listing names");
  if (len > 65536) return absl::DataLossError(absl::StrCat("a name of ", len, " bytes"));
  std::string name(static_cast<size_t>(len) + 1, '\0');
  len = attr ? H5Aget_name_by_idx(obj, ".", index, H5_ITER_INC, i, name.data(), name.size(),
                                  H5P_DEFAULT)
             : H5Lget_name_by_idx(obj, ".", index, H5_ITER_INC, i, name.data(), name.size(),
                                  H5P_DEFAULT);
  if (len < 0) return Hdf5Error("listing names");
  name.resize(static_cast<size_t>(len));
  return name;
}
}  // namespace

absl::StatusOr<std::vector<std::string>> AttrNames(hid_t obj, int64_t max_count) {
  H5O_info_t info;
  MLA_RETURN_IF_ERROR(Checked(H5Oget_info2(obj, &info, H5O_INFO_NUM_ATTRS), "listing attributes"));
  if (static_cast<int64_t>(info.num_attrs) > max_count)
    return absl::DataLossError(
        absl::StrCat(info.num_attrs, " attributes where at most ", max_count, " are allowed"));
  // Creation order when tracked (files from other writers may), else name order.
  H5_index_t index = H5_INDEX_CRT_ORDER;
  if (info.num_attrs > 0 &&
      H5Aget_name_by_idx(obj, ".", index, H5_ITER_INC, 0, nullptr, 0, H5P_DEFAULT) < 0)
    index = H5_INDEX_NAME;
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.num_attrs; ++i) {
    MLA_ASSIGN_OR_RETURN(std::string n, NameByIndex(obj, true, index, i));
    names.push_back(std::move(n));
  }
  return names;
}

absl::StatusOr<std::vector<std::string>> LinkNames(hid_t group, int64_t max_count) {
  H5G_info_t info;
  MLA_RETURN_IF_ERROR(Checked(H5Gget_info(group, &info), "listing a group"));
  if (static_cast<int64_t>(info.nlinks) > max_count)
    return absl::DataLossError(
        absl::StrCat(info.nlinks, " entries in a group where at most ", max_count, " are allowed"));
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    MLA_ASSIGN_OR_RETURN(std::string n, NameByIndex(group, false, H5_INDEX_NAME, i));
    names.push_back(std::move(n));
  }
  return names;
}

absl::StatusOr<std::vector<int64_t>> DatasetDims(hid_t dset, int max_rank) {
  MLA_ASSIGN_OR_RETURN(Hid space, Checked(H5Dget_space(dset), "reading a dataspace"));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) return Hdf5Error("reading a dataspace");
  if (rank > max_rank)
    return absl::DataLossError(absl::StrCat("rank ", rank, " where at most ", max_rank, " is allowed"));
  hsize_t dims[H5S_MAX_RANK];
  if (H5Sget_simple_extent_dims(space.get(), dims, nullptr) < 0) return Hdf5Error("reading dims");
  return std::vector<int64_t>(dims, dims + rank);
}

std::array<Rect, 3> SplitFlatRange(const std::vector<int64_t>& shape, int64_t lo, int64_t hi) {
  std::array<Rect, 3> slots;
  if (lo >= hi) return slots;
  if (shape.size() == 1) {
    slots[1] = {0, lo, 1, hi - lo, lo};
    return slots;
  }
  const int64_t cols = shape[1];
  int64_t r0 = lo / cols;
  const int64_t c0 = lo % cols, r1 = hi / cols, c1 = hi % cols;  // hi is exclusive
  if (r0 == r1) {
    slots[0] = {r0, c0, 1, c1 - c0, lo};
    return slots;
  }
  if (c0 > 0) {
    slots[0] = {r0, c0, 1, cols - c0, lo};
    ++r0;
  }
  if (r1 > r0) slots[1] = {r0, 0, r1 - r0, cols, r0 * cols};
  if (c1 > 0) slots[2] = {r1, 0, 1, c1, r1 * cols};
  return slots;
}

absl::Status RectSpaces(hid_t dset, const std::vector<int64_t>& shape, const Rect& rect, Hid* file_space,
                        Hid* mem_space) {
  MLA_ASSIGN_OR_RETURN(*file_space, Checked(H5Dget_space(dset), "reading a dataspace"));
  if (rect.size() == 0) {
    const hsize_t one = 1;
    MLA_ASSIGN_OR_RETURN(*mem_space, Checked(H5Screate_simple(1, &one, nullptr), "creating a dataspace"));
    MLA_RETURN_IF_ERROR(Checked(H5Sselect_none(mem_space->get()), "selecting nothing"));
    return Checked(H5Sselect_none(file_space->get()), "selecting nothing");
  }
  const bool one_d = shape.size() == 1;
  const int rank = one_d ? 1 : 2;
  hsize_t start[2], count[2];
  if (one_d) {
    start[0] = static_cast<hsize_t>(rect.col);
    count[0] = static_cast<hsize_t>(rect.ncols);
  } else {
    start[0] = static_cast<hsize_t>(rect.row);
    start[1] = static_cast<hsize_t>(rect.col);
    count[0] = static_cast<hsize_t>(rect.nrows);
    count[1] = static_cast<hsize_t>(rect.ncols);
  }
  MLA_RETURN_IF_ERROR(Checked(H5Sselect_hyperslab(file_space->get(), H5S_SELECT_SET, start, nullptr, count, nullptr),
                              "selecting a hyperslab"));
  MLA_ASSIGN_OR_RETURN(*mem_space, Checked(H5Screate_simple(rank, count, nullptr), "creating a dataspace"));
  return absl::OkStatus();
}

}  // namespace mla::ckpt

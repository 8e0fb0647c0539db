#pragma once
// Internal to checkpoint/: RAII ownership of HDF5 ids, HDF5 errors as
// absl::Status, and typed attribute access with every size bounded before
// allocation. Not thread-safe (HDF5 as packaged by Debian is not); a failed
// call returns a status carrying HDF5's own innermost message.
#include <hdf5.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "checkpoint/format.h"

namespace mla::ckpt {

// Owns one HDF5 id of any kind and closes it with H5Idec_ref semantics of its
// type (H5Fclose, H5Dclose, ...). Move-only.
class Hid {
 public:
  Hid() = default;
  explicit Hid(hid_t id) : id_(id) {}
  Hid(Hid&& other) noexcept : id_(other.id_) { other.id_ = H5I_INVALID_HID; }
  Hid& operator=(Hid&& other) noexcept;
  Hid(const Hid&) = delete;
  Hid& operator=(const Hid&) = delete;
  ~Hid() { Reset(); }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now and reports failure (H5Fclose can fail when flushing).
  absl::Status Close();
  void Reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// True once closing an HDF5 file has failed (e.g. ENOSPC on its final
// flush). HDF5 1.10 then crashes at its own shutdown (MPI_Finalize / exit), so
// a program should end with std::_Exit after reporting its error.
bool Hdf5LibraryDamaged();

// Turns off HDF5's printing of its error stack to stderr; errors become
// statuses instead. Cheap; called at every entry point.
void SilenceHdf5Errors();

// The most specific message on HDF5's current error stack, e.g.
// "data error detected by Fletcher32 checksum"; empty when none.
std::string Hdf5ErrorDetail();

// `what` plus HDF5's detail, as a DataLoss/Internal-style status.
absl::Status Hdf5Error(absl::string_view what);

// Wraps an id returned by an HDF5 call; negative ids become Hdf5Error(what).
absl::StatusOr<Hid> Checked(hid_t id, absl::string_view what);
absl::Status Checked(herr_t rc, absl::string_view what);

bool LinkExists(hid_t loc, const std::string& path);
bool AttrExists(hid_t obj, const std::string& name);

// Attribute writers (scalar attributes). Collective in a parallel file: every
// rank must call them with the same values.
absl::Status WriteAttr(hid_t obj, const std::string& name, const ConfigValue& value);

// Attribute readers; fail with a message naming the attribute when it is
// missing, of another class or an absurd size.
absl::StatusOr<int64_t> ReadIntAttr(hid_t obj, const std::string& name);
absl::StatusOr<double> ReadDoubleAttr(hid_t obj, const std::string& name);
absl::StatusOr<std::string> ReadStringAttr(hid_t obj, const std::string& name);
// Any supported attribute type, as the variant.
absl::StatusOr<ConfigValue> ReadConfigAttr(hid_t obj, const std::string& name);

// Names of the attributes of `obj` in creation order (name order when the
// object does not track creation order), at most `max_count`.
absl::StatusOr<std::vector<std::string>> AttrNames(hid_t obj, int64_t max_count);
// Names of the links in group `group`, in name order, at most `max_count`.
absl::StatusOr<std::vector<std::string>> LinkNames(hid_t group, int64_t max_count);

// Dimensions of a dataset's dataspace; fails for rank > max_rank.
absl::StatusOr<std::vector<int64_t>> DatasetDims(hid_t dset, int max_rank);

// The flat range [lo, hi) of a row-major rank-1 or rank-2 tensor as at most
// three rectangles, each contiguous in the flat order: slot 0 the partial
// first row, slot 1 the whole rows, slot 2 the partial last row (a rank-1
// tensor only ever uses slot 1). Absent slots are empty. Each rectangle is
// transferred with a memory space of its own shape: HDF5 1.10 maps a 1-D
// memory space onto a 2-D file selection element by element, which is an
// order of magnitude slower.
struct Rect {
  int64_t row = 0, col = 0, nrows = 0, ncols = 0;
  int64_t flat_lo = 0;  // index of its first element in the tensor
  int64_t size() const { return nrows * ncols; }
};
std::array<Rect, 3> SplitFlatRange(const std::vector<int64_t>& shape, int64_t lo, int64_t hi);

// File space of `dset` selecting `rect` (nothing when empty), and the
// matching memory space (a 1-element space selecting nothing when empty).
absl::Status RectSpaces(hid_t dset, const std::vector<int64_t>& shape, const Rect& rect, Hid* file_space,
                        Hid* mem_space);

}  // namespace mla::ckpt

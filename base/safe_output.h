#pragma once
// Writing the files the programs produce without ever losing the user's work
// (docs/reliability.md, "Every output written safely"). Header-only; POSIX,
// depends on nothing in the project.
//
//  - Whole files (config.json, exports, evaluation outputs, checkpoint
//    pointers): AtomicFile / WriteFileAtomically write `<path>.tmp`, fsync it,
//    rename it onto `<path>` and fsync the directory, so `<path>` holds either
//    its old content or the complete new one — never a partial file, whatever
//    kill or full disk happens in between.
//  - Append-only logs (metrics.jsonl): AppendLog checks every write (a short
//    write on a full disk is an error, never silently dropped) and flushes to
//    the disk on Sync and Close.
//  - CheckOutputTarget refuses an output that is one of the command's inputs
//    (same inode, whatever the spelling of the path) and an existing file
//    unless the user asked to overwrite it.
// Every failure is a status naming the path, the errno text and its number.
// Objects are move-only and not shared between threads.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace mla {

// "<what> <path>: <strerror(err)> (errno <err>)"; pass errno before any other call.
inline absl::Status ErrnoError(absl::string_view what, const std::string& path, int err = errno) {
  return absl::InternalError(
      absl::StrCat(what, " ", path, ": ", std::strerror(err), " (errno ", err, ")"));
}

// Owns a file descriptor (closed on destruction unless released). Move-only.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = other.release();
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Gives up ownership, e.g. to close explicitly and check the result.
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// Writes all of `bytes` (retrying short writes and EINTR); `path` names the
// file in the error.
inline absl::Status WriteAll(int fd, absl::string_view bytes, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write failed on", path);
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Closes `fd` and reports a failed close (NFS reports delayed write errors here).
inline absl::Status CloseChecked(Fd fd, const std::string& path) {
  if (::close(fd.release()) != 0) return ErrnoError("close failed on", path);
  return absl::OkStatus();
}

// The directory holding `path` ("." for a bare name).
inline std::string DirectoryOf(const std::string& path) {
  const std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

// fsync of a file or directory by path.
inline absl::Status FsyncPath(const std::string& path, bool directory) {
  Fd fd(::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY | O_CLOEXEC) : (O_RDONLY | O_CLOEXEC)));
  if (fd.get() < 0) return ErrnoError("cannot open for fsync", path);
  if (::fsync(fd.get()) != 0) return ErrnoError("fsync failed on", path);
  return CloseChecked(std::move(fd), path);
}

// rename(from, to) then fsync of the directory holding `to`.
inline absl::Status DurableRename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0)
    return ErrnoError(absl::StrCat("cannot rename ", from, " to"), to);
  return FsyncPath(DirectoryOf(to), /*directory=*/true);
}

// A whole file written beside its final path and renamed onto it by Commit.
// Destroyed without a successful Commit, it deletes its temporary file and
// leaves the final path as it was.
class AtomicFile {
 public:
  static constexpr char kTmpSuffix[] = ".tmp";

  static absl::StatusOr<AtomicFile> Create(const std::string& path) {
    const std::string tmp = path + kTmpSuffix;
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) return ErrnoError("cannot create", tmp);
    return AtomicFile(path, tmp, std::move(fd));
  }
  AtomicFile(AtomicFile&& other) noexcept
      : path_(std::move(other.path_)), tmp_(std::move(other.tmp_)), fd_(std::move(other.fd_)) {
    other.tmp_.clear();
  }
  AtomicFile& operator=(AtomicFile&&) = delete;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile() {
    if (!tmp_.empty()) ::unlink(tmp_.c_str());
  }

  const std::string& path() const { return path_; }
  absl::Status Append(absl::string_view bytes) { return WriteAll(fd_.get(), bytes, tmp_); }
  // Rewrites bytes already appended, at `offset` (e.g. a header whose fields
  // are known only at the end).
  absl::Status Overwrite(off_t offset, absl::string_view bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::pwrite(fd_.get(), bytes.data() + done, bytes.size() - done,
                                 offset + static_cast<off_t>(done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError("write failed on", tmp_);
      }
      done += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }
  // fsync → close → rename onto path() → fsync of the directory.
  absl::Status Commit() {
    if (::fsync(fd_.get()) != 0) return ErrnoError("fsync failed on", tmp_);
    if (absl::Status s = CloseChecked(std::move(fd_), tmp_); !s.ok()) return s;
    if (absl::Status s = DurableRename(tmp_, path_); !s.ok()) return s;
    tmp_.clear();
    return absl::OkStatus();
  }

 private:
  AtomicFile(std::string path, std::string tmp, Fd fd)
      : path_(std::move(path)), tmp_(std::move(tmp)), fd_(std::move(fd)) {}
  std::string path_, tmp_;  // tmp_ empty: committed (or moved from)
  Fd fd_;
};

inline absl::Status WriteFileAtomically(const std::string& path, absl::string_view content) {
  absl::StatusOr<AtomicFile> file = AtomicFile::Create(path);
  if (!file.ok()) return file.status();
  if (absl::Status s = file->Append(content); !s.ok()) return s;
  return file->Commit();
}

// An append-only log of lines (one write per line, so a reader never sees a
// line interleaved with another). Every write is checked.
class AppendLog {
 public:
  // Opens `path` for appending, creating it when missing.
  static absl::StatusOr<AppendLog> Open(const std::string& path) {
    Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (fd.get() < 0) return ErrnoError("cannot open for appending", path);
    return AppendLog(path, std::move(fd));
  }
  AppendLog(AppendLog&&) noexcept = default;
  AppendLog& operator=(AppendLog&&) noexcept = default;

  const std::string& path() const { return path_; }
  // Appends `line` and a newline. A failed write (a full disk) is cut off
  // again where possible, so the log keeps ending with a whole line.
  absl::Status AppendLine(absl::string_view line) {
    const off_t before = ::lseek(fd_.get(), 0, SEEK_END);
    absl::Status s = WriteAll(fd_.get(), absl::StrCat(line, "\n"), path_);
    if (!s.ok() && before >= 0) {
      [[maybe_unused]] const int cut = ::ftruncate(fd_.get(), before);  // best effort; `s` is the error
    }
    return s;
  }
  // Flushes what was appended to the disk.
  absl::Status Sync() {
    if (::fdatasync(fd_.get()) != 0) return ErrnoError("fdatasync failed on", path_);
    return absl::OkStatus();
  }
  absl::Status Close() {
    if (absl::Status s = Sync(); !s.ok()) return s;
    return CloseChecked(std::move(fd_), path_);
  }

 private:
  AppendLog(std::string path, Fd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  std::string path_;
  Fd fd_;
};

// What an output may not be.
struct OutputRules {
  std::vector<std::string> inputs;  // files the same command reads
  bool overwrite = false;           // --force: an existing file may be replaced
};

// Refuses `path` when it is (the same inode as) one of `rules.inputs`, or when
// it exists and `rules.overwrite` is false. `flag` names the option that
// chose the path, for the message.
inline absl::Status CheckOutputTarget(const std::string& path, const OutputRules& rules,
                                      absl::string_view flag) {
  struct stat out;
  if (::stat(path.c_str(), &out) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoError(absl::StrCat(flag, ": cannot stat"), path);
  }
  for (const std::string& input : rules.inputs) {
    struct stat in;
    if (::stat(input.c_str(), &in) == 0 && in.st_dev == out.st_dev && in.st_ino == out.st_ino)
      return absl::InvalidArgumentError(absl::StrCat(
          flag, "=", path, " is the input ", input, " of this command; refusing to write onto it"));
  }
  if (!rules.overwrite)
    return absl::AlreadyExistsError(absl::StrCat(
        flag, "=", path, " exists; pass --force to replace it, or choose another path"));
  if (S_ISDIR(out.st_mode))
    return absl::InvalidArgumentError(absl::StrCat(flag, "=", path, " is a directory"));
  return absl::OkStatus();
}

}  // namespace mla

#include "runtime/run_lock.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace mla {
namespace {

std::string Holder() {
  char host[256] = "?";
  if (::gethostname(host, sizeof(host) - 1) != 0) host[0] = '?';
  host[sizeof(host) - 1] = '\0';
  char when[32] = "?";
  const std::time_t now = std::time(nullptr);
  std::tm utc;
  if (gmtime_r(&now, &utc) != nullptr)
    std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return absl::StrCat("pid ", ::getpid(), " on host ", host, ", started ", when);
}

// What the holder wrote into the lock file (it may not have written yet).
std::string ReadHolder(int fd) {
  char buf[512];
  const ssize_t n = ::pread(fd, buf, sizeof(buf), 0);
  if (n <= 0) return "holder not recorded yet";
  return std::string(absl::StripAsciiWhitespace(absl::string_view(buf, static_cast<size_t>(n))));
}

}  // namespace

absl::StatusOr<RunDirLock> RunDirLock::Acquire(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create --out_dir ", dir, ": ", ec.message()));
  const std::string path = absl::StrCat(dir, "/", kFileName);
  Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (fd.get() < 0) return ErrnoError("cannot open the run directory lock", path);
  struct flock lock = {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;  // the whole file: start 0, length 0
  if (::fcntl(fd.get(), F_OFD_SETLK, &lock) != 0) {
    if (errno == EAGAIN || errno == EACCES)
      return absl::FailedPreconditionError(absl::StrCat(
          "--out_dir ", dir, " is in use by another mla-train job (", ReadHolder(fd.get()),
          "; lock file ", path, "). Wait for that job to end, or choose another --out_dir"));
    return ErrnoError("cannot lock", path);
  }
  const std::string holder = Holder() + "\n";
  if (::ftruncate(fd.get(), 0) != 0) return ErrnoError("cannot truncate", path);
  if (::pwrite(fd.get(), holder.data(), holder.size(), 0) != static_cast<ssize_t>(holder.size()))
    return ErrnoError("cannot write", path);
  return RunDirLock(path, std::move(fd));
}

}  // namespace mla

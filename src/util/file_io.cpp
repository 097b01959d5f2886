// Write-to-temporary, fsync, rename.
#include "llama2/util/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "llama2/util/errors.h"

namespace llama2 {

std::string read_file(const std::string& path, const std::string& flag, const std::string& expected) {
  std::string bytes;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : 0;
  char buffer[1 << 16];
  while (fd >= 0 && (n = ::read(fd, buffer, sizeof buffer)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    bytes.append(buffer, static_cast<size_t>(n));
  }
  const int saved_errno = errno;
  if (fd >= 0) ::close(fd);
  if (n < 0)
    throw BadInput((flag.empty() ? path : flag + " = " + path) + ": cannot read (" + std::strerror(saved_errno) + ")" +
                   (expected.empty() ? "" : "; expected " + expected));
  return bytes;
}

void ensure_directory(const std::string& dir, const std::string& flag) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir))
    throw BadInput(flag + " = " + dir + ": cannot create the directory (" + (ec ? ec.message() : "not a directory") +
                   "); expected a writable path");
}
namespace {

[[noreturn]] void io_error(const std::string& what, const std::string& path) {
  throw RuntimeFailure(what + " " + path + ": " + std::strerror(errno));
}

}  // namespace

AtomicFile::AtomicFile(std::string path, std::string tmp)
    : path_(std::move(path)), tmp_(tmp.empty() ? path_ + ".tmp" : std::move(tmp)) {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) io_error("cannot create", tmp_);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t size) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) io_error("cannot write", tmp_);
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) io_error("cannot fsync", tmp_);
  if (::close(fd_) != 0) {
    fd_ = -1;
    io_error("cannot close", tmp_);
  }
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) io_error("cannot rename into", path_);
  sync_directory(std::filesystem::path(path_).parent_path().string());
}

void sync_directory(const std::string& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) io_error("cannot open directory", dir);
  const int synced = ::fsync(fd);
  const int saved_errno = errno;
  ::close(fd);
  errno = saved_errno;
  if (synced != 0) io_error("cannot fsync directory", dir);
}

}  // namespace llama2

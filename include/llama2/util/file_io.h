// Owns files on disk: whole-file reads with a clear error, output directories created with one, and durable writes (a file goes to
// "<path>.tmp", is fsynced, renamed over <path>, its directory fsynced: a crash leaves the old file or the new one).
#pragma once
#include <cstddef>
#include <string>

namespace llama2 {

class AtomicFile {
 public:
  // RuntimeFailure naming the path if it cannot be created. `tmp`: the temporary's path, when several processes may
  // write `path` at once (default "<path>.tmp").
  explicit AtomicFile(std::string path, std::string tmp = "");
  ~AtomicFile();                          // an uncommitted file is removed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);  // RuntimeFailure on a short write (e.g. a full disk)
  void commit();                               // fsync, rename into place, fsync the directory

 private:
  std::string path_, tmp_;
  int fd_ = -1;
};

// The whole file's bytes. BadInput "<flag> = <path>: cannot read (<reason>); expected <expected>" (the flag and the
// expectation only when given).
std::string read_file(const std::string& path, const std::string& flag = "", const std::string& expected = "");

// Creates `dir` and its parents; throws BadInput naming the directory and the reason.
void ensure_directory(const std::string& dir, const std::string& flag);

// fsync of a directory, so that renames and creations inside it are durable; RuntimeFailure if it fails.
void sync_directory(const std::string& dir);

}  // namespace llama2

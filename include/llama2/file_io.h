// Owns durable file writes: a file is written to "<path>.tmp", fsynced, renamed over <path>, and its
// directory fsynced, so a crash at any instant leaves either the old file or the complete new one.
#pragma once
#include <cstddef>
#include <string>

namespace llama2 {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // RuntimeFailure naming the path if it cannot be created
  ~AtomicFile();                          // an uncommitted file is removed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);  // RuntimeFailure on a short write (e.g. a full disk)
  void commit();                               // fsync, rename into place, fsync the directory

 private:
  std::string path_, tmp_;
  int fd_ = -1;
};

// fsync of a directory, so that renames and creations inside it are durable.
void sync_directory(const std::string& dir);

}  // namespace llama2

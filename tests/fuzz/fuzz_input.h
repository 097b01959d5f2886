// Owns what every fuzz target shares: fuzz bytes written to a private temporary file, and the rule that a
// reader given hostile bytes may only throw BadInput (a clear message); anything else crashes the fuzzer.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <spdlog/spdlog.h>

#include "llama2/util/errors.h"

namespace llama2::fuzz {

// A directory of this process's own (in /dev/shm when present: the readers take paths, not buffers).
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    std::string pattern = (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp") + std::string("/llama2-fuzz-XXXXXX");
    if (mkdtemp(pattern.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    spdlog::set_level(spdlog::level::off);  // readers warn about unknown keys: noise at 10^5 inputs
    return pattern;
  }();
  return dir;
}

// Writes the input to <scratch>/<name> and returns its path.
inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch_dir() + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || std::fwrite(data, 1, size, f) != size || std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::abort();
  }
  return path;
}

// Runs a reader on hostile input: success and BadInput are the two allowed outcomes.
template <typename F>
void expect_clear_outcome(F&& read) {
  try {
    read();
  } catch (const BadInput& e) {
    if (std::string(e.what()).empty()) std::abort();  // a BadInput must say what is wrong
  }
}

}  // namespace llama2::fuzz

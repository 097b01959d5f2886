// Owns the two error kinds of the program and their exit statuses; nothing else.
// BadInput (exit 2): the user's config, flags or data are wrong. RuntimeFailure (exit 1): the run failed.
#pragma once
#include <stdexcept>
#include <string>

namespace llama2 {

inline constexpr int kExitBadInput = 2;
inline constexpr int kExitRuntimeFailure = 1;

// A config, flag, or data file the user must fix. The message names file/key/value and what is valid.
struct BadInput : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Anything that went wrong while running with valid inputs (I/O, MPI, numerical failure).
struct RuntimeFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace llama2

// Owns the two error kinds of the program, their exit statuses, and how any error is said in one line.
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

// The error's message without the C++ stack trace libtorch and oneDNN errors carry (c10::Error's backtrace).
std::string one_line(const std::exception& error);

}  // namespace llama2

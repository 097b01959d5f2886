// One-line error messages: c10::Error (libtorch, and oneDNN through ATen) without its stack trace.
#include "llama2/util/errors.h"

#include <c10/util/Exception.h>

namespace llama2 {

std::string one_line(const std::exception& error) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&error);
  std::string message = c10_error ? c10_error->what_without_backtrace() : error.what();
  while (!message.empty() && message.back() == '\n') message.pop_back();
  return message;
}

}  // namespace llama2

// Numeric flag validators: parse the text as the flag's type, then say in words what would be valid.
#include "llama2/config/flag_checks.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

namespace llama2 {
namespace {

// The whole text as an integer; false for anything else (a fraction, trailing text, overflow, empty).
bool parse_integer(const std::string& text, int64_t& value) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  value = v;
  return true;
}

// The whole text as a finite number.
bool parse_finite(const std::string& text, double& value) {
  if (text.empty()) return false;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (*end != '\0' || !std::isfinite(v)) return false;
  value = v;
  return true;
}

std::string integer_words(int64_t min, int64_t max) {
  if (max != INT64_MAX) return fmt::format("an integer from {} to {}", min, max);
  if (min == 0) return "a non-negative integer";
  if (min == 1) return "a positive integer";
  return fmt::format("an integer ≥ {}", min);
}

std::string number_words(double min, double max) {
  return std::isinf(max) ? fmt::format("a finite number ≥ {}", min)
                         : fmt::format("a finite number from {} to {}", min, max);
}

// Accepts text that `parse` reads as a value in [min, max]; else "must be <words>; got <text>".
template <typename V>
CLI::Validator validator(V min, V max, bool (*parse)(const std::string&, V&), const std::string& words,
                         const std::string& description) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        V v{};
        if (parse(text, v) && v >= min && v <= max) return "";
        return fmt::format("must be {}; got {}", words, text);
      },
      description);
}

}  // namespace

CLI::Validator integer_at_least(int64_t min) {
  return validator<int64_t>(min, INT64_MAX, parse_integer, integer_words(min, INT64_MAX),
                            min == 1 ? "POSITIVE" : min == 0 ? "NONNEGATIVE" : fmt::format(">= {}", min));
}

CLI::Validator integer_in(int64_t min, int64_t max) {
  return validator<int64_t>(min, max, parse_integer, integer_words(min, max), fmt::format("INT in [{} - {}]", min, max));
}

CLI::Validator number_in(double min, double max) {
  return validator<double>(min, max, parse_finite, number_words(min, max), fmt::format("FLOAT in [{} - {}]", min, max));
}

CLI::Validator number_at_least(double min) {
  return validator<double>(min, INFINITY, parse_finite, number_words(min, INFINITY),
                           min == 0 ? "NONNEGATIVE" : fmt::format(">= {}", min));
}

std::string flag_error(const std::string& message) {
  const size_t colon = message.find(": must be ");
  return colon == std::string::npos ? message : message.substr(0, colon) + message.substr(colon + 1);
}

}  // namespace llama2

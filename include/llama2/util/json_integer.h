// Owns reading integers from untrusted JSON: only integer literals within the caller's range are accepted,
// so a float or an out-of-range value never reaches a C++ integer conversion (undefined for floats).
#pragma once
#include <cstdint>

#include <nlohmann/json.hpp>

namespace llama2 {

// True when `v` is an integer literal in [lo, hi].
inline bool json_integer_in(const nlohmann::json& v, int64_t lo, uint64_t hi) {
  if (!v.is_number_integer()) return false;
  if (v.is_number_unsigned()) {
    const uint64_t x = v.get<uint64_t>();
    return x <= hi && (lo <= 0 || x >= static_cast<uint64_t>(lo));
  }
  const int64_t x = v.get<int64_t>();
  return x >= lo && (x < 0 || static_cast<uint64_t>(x) <= hi);
}

}  // namespace llama2

// Owns how sizes and durations are written for people in logs and messages: "1.25 GiB", "512.0 MiB",
// "3m07s", "2h05m".
#pragma once
#include <cstdint>
#include <string>

namespace llama2 {

std::string format_bytes(int64_t bytes);        // GiB from 1 GiB up (2 decimals), else MiB (1 decimal)
std::string format_duration(double seconds);    // "<m>m<ss>s" below an hour, else "<h>h<mm>m"

}  // namespace llama2

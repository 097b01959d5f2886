// Owns how numeric flags are checked: CLI11 validators whose one-line errors name the valid set in words
// ("--max_steps must be a positive integer; got 0"), refusing non-finite numbers and signs on unsigned flags.
#pragma once
#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

namespace llama2 {

CLI::Validator integer_at_least(int64_t min);          // 0: "a non-negative integer", 1: "a positive integer"
CLI::Validator integer_in(int64_t min, int64_t max);  // "an integer from min to max"
CLI::Validator number_in(double min, double max);     // "a finite number from min to max"
CLI::Validator number_at_least(double min);           // "a finite number ≥ min"

// A CLI11 validation message ("--flag: must be ...") as one sentence: "--flag must be ...".
std::string flag_error(const std::string& cli11_message);

}  // namespace llama2

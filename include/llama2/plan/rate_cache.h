// Owns the cache of this machine's measured rates (GEMM and attention FLOP/s, streaming bandwidth), so that `train`
// and `plan` measure once per machine and build instead of at every start: one JSON file per machine identity.
#pragma once
#include <functional>
#include <string>

namespace llama2 {

// This machine and build as the rates depend on them: CPU model, oneDNN's ISA and version, intra-op threads, and
// the executable (size and modification time).
std::string machine_identity();

// $XDG_CACHE_HOME/llama2_pretrain (else $HOME/.cache/llama2_pretrain)/rates-<hash of machine_identity()>.json;
// "" when neither variable is set.
std::string rate_cache_path();

// The rate named `key` (what was measured, shape and precision: "gemm 2048x512x2752 bf16"): from the cache, or
// measure() run and its result stored when the cache lacks it or `remeasure`. A cache that cannot be read or written
// only costs the measurement.
double cached_rate(const std::string& key, bool remeasure, const std::function<double()>& measure);

}  // namespace llama2

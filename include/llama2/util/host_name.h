// Owns the name of the host this process runs on, as the logs, locks, heartbeats and TensorBoard file names give it.
#pragma once
#include <string>

namespace llama2 {

std::string host_name();  // gethostname(); "localhost" if it fails

}  // namespace llama2

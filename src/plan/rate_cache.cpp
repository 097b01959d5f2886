// rates-<hash>.json: {"machine": identity, "rates": {key: value}}, rewritten whole through a per-process temporary.
#include "llama2/plan/rate_cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>

#include <ATen/Parallel.h>
#include <dnnl.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "llama2/util/file_io.h"

namespace llama2 {
namespace {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

// Size and modification time of this executable: a rebuild is another build.
std::string executable_identity() {
  struct stat st {};
  if (::stat("/proc/self/exe", &st) != 0) return "unknown executable";
  return fmt::format("{} bytes, modified {}.{:09d}", st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

nlohmann::json read_cache(const std::string& path, const std::string& identity) {
  std::ifstream in(path);
  if (!in) return nlohmann::json::object();
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    if (j.value("machine", "") == identity && j.contains("rates") && j["rates"].is_object()) return j["rates"];
  } catch (const nlohmann::json::exception&) {
  }
  return nlohmann::json::object();  // another machine's (a hash collision) or damaged: measured again
}

// The cache file of `identity` (machine_identity()): "" without $XDG_CACHE_HOME and $HOME.
std::string cache_path(const std::string& identity) {
  std::string dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0')
    dir = std::string(xdg) + "/llama2_pretrain";
  else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0')
    dir = std::string(home) + "/.cache/llama2_pretrain";
  else
    return "";
  return fmt::format("{}/rates-{:016x}.json", dir, std::hash<std::string>{}(identity));
}

}  // namespace

std::string machine_identity() {
  const dnnl_version_t* v = dnnl_version();
  return fmt::format("{}; oneDNN {}.{}.{} ISA {}; {} threads; {}", cpu_model(), v->major, v->minor, v->patch,
                     static_cast<int>(dnnl::get_effective_cpu_isa()), at::get_num_threads(), executable_identity());
}

std::string rate_cache_path() { return cache_path(machine_identity()); }

double cached_rate(const std::string& key, bool remeasure, const std::function<double()>& measure) {
  const std::string identity = machine_identity(), path = cache_path(identity);  // /proc read once a call
  nlohmann::json rates = path.empty() ? nlohmann::json::object() : read_cache(path, identity);
  if (!remeasure && rates.contains(key) && rates[key].is_number() && rates[key].get<double>() > 0)
    return rates[key].get<double>();
  const double rate = measure();
  if (path.empty()) return rate;
  rates[key] = rate;
  try {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    AtomicFile file(path, fmt::format("{}.tmp.{}", path, ::getpid()));
    const std::string text = nlohmann::json{{"machine", identity}, {"rates", rates}}.dump(2) + "\n";
    file.write(text.data(), text.size());
    file.commit();
  } catch (const std::exception& e) {
    spdlog::debug("rate cache {} not written: {}", path, e.what());
  }
  return rate;
}

}  // namespace llama2

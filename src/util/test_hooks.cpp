// LLAMA2_TEST_HOOKS parsed once.
#include "llama2/util/test_hooks.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "llama2/util/errors.h"

namespace llama2 {
namespace {

TestHooks parse(const std::string& text) {
  TestHooks hooks;
  std::istringstream items(text);
  for (std::string item; std::getline(items, item, ';');) {
    if (item.empty()) continue;
    char group[16] = {};
    long long seq = 0;
    const bool ok =
        std::sscanf(item.c_str(), "compute_delay=%d:%lf", &hooks.delay_rank, &hooks.delay_s) == 2 ||
        std::sscanf(item.c_str(), "skip_collective=%d:%15[a-z]:%lld", &hooks.skip_rank, group, &seq) == 3 ||
        std::sscanf(item.c_str(), "slow_save=%lf", &hooks.slow_save_s) == 1;
    if (!ok)
      throw BadInput("LLAMA2_TEST_HOOKS = " + text + ": cannot read '" + item +
                     "'; expected compute_delay=RANK:SECONDS, skip_collective=RANK:GROUP:SEQ or slow_save=SECONDS");
    if (group[0] != '\0') {
      hooks.skip_group = group;
      hooks.skip_seq = seq;
    }
  }
  return hooks;
}

}  // namespace

const TestHooks& test_hooks() {
  static const TestHooks hooks = [] {
    const char* text = std::getenv("LLAMA2_TEST_HOOKS");
    return text ? parse(text) : TestHooks{};
  }();
  return hooks;
}

}  // namespace llama2

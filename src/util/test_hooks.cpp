// LLAMA2_TEST_HOOKS parsed once.
#include "llama2/util/test_hooks.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "llama2/util/errors.h"

namespace llama2 {
namespace {

// A hook without a value (no_attention, reference_attention, portable_kernels): whether `item` names one, which it
// then sets.
bool set_switch(const std::string& item, TestHooks& hooks) {
  if (item == "no_attention") return hooks.no_attention = true;
  if (item == "reference_attention") return hooks.reference_attention = true;
  if (item == "portable_kernels") return hooks.portable_kernels = true;
  return false;
}

TestHooks parse(const std::string& text) {
  TestHooks hooks;
  std::istringstream items(text);
  for (std::string item; std::getline(items, item, ';');) {
    if (item.empty()) continue;
    char fault[8] = {}, group[16] = {};
    long long seq = 0;
    const bool collective =
        std::sscanf(item.c_str(), "%7[a-z]_collective=%d:%15[a-z]:%lld", fault, &hooks.fault_rank, group, &seq) == 4 &&
        (std::string(fault) == "skip" || std::string(fault) == "fail");
    const bool ok = collective ||
                    std::sscanf(item.c_str(), "compute_delay=%d:%lf", &hooks.delay_rank, &hooks.delay_s) == 2 ||
                    std::sscanf(item.c_str(), "slow_save=%lf", &hooks.slow_save_s) == 1 ||
                    std::sscanf(item.c_str(), "mem_available=%lf", &hooks.mem_available_gib) == 1 ||
                    set_switch(item, hooks);
    if (!ok)
      throw BadInput("LLAMA2_TEST_HOOKS = " + text + ": cannot read '" + item +
                     "'; expected compute_delay=RANK:SECONDS, skip_collective=RANK:GROUP:SEQ, "
                     "fail_collective=RANK:GROUP:SEQ, slow_save=SECONDS, mem_available=GIB, no_attention, "
                     "reference_attention or portable_kernels");
    if (collective) {
      hooks.fault = std::string(fault) == "skip" ? TestHooks::CollectiveFault::Skip : TestHooks::CollectiveFault::Fail;
      hooks.fault_group = group;
      hooks.fault_seq = seq;
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

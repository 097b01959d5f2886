// Fuzzes the Hugging Face config.json reader; an accepted config must survive its own round trip.
#include "fuzz_input.h"
#include "llama2/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llama2;
  fuzz::scratch_dir();  // silences logging
  fuzz::expect_clear_outcome([&] {
    const ModelConfig config = model_config_from_json(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    const ModelConfig back = model_config_from_json(model_config_to_json(config), "round trip");
    if (!config_differences(config, back).empty()) std::abort();
  });
  return 0;
}

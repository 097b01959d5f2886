// Fuzzes a checkpoint's meta.json through CheckpointReader (config, layout, training state, shard lookup).
// The directory holds no shard files, so reading weights must end in BadInput ("shard is missing").
#include "fuzz_input.h"
#include "llama2/checkpoint/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llama2;
  fuzz::write_input("meta.json", data, size);
  fuzz::expect_clear_outcome([&] {
    CheckpointReader checkpoint(fuzz::scratch_dir());
    checkpoint.state();
    checkpoint.optimizer_step();
    checkpoint.weights(0, checkpoint.tp() - 1);
    std::abort();  // unreachable: the shard file does not exist
  });
  return 0;
}

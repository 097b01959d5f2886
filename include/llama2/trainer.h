// Owns the training loop: build model and optimizer for the layout, run steps with accumulation,
// log progress. Does not own parsing (cli.cpp) or MPI (communicator.h).
#pragma once
#include "llama2/train_options.h"

namespace llama2 {

class DistributedContext;

// Runs `train`. Throws BadInput / RuntimeFailure; returns the process exit status on success.
int run_training(TrainOptions options, DistributedContext& dist);

}  // namespace llama2

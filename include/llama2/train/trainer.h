// Owns `train`: a Trainer sets up the layout, model, optimizer and data, then runs optimizer steps as named
// steps (train_step → evaluate → report → preemption check → maybe_save) and finishes with results.json.
#pragma once
#include "llama2/config/train_options.h"

namespace llama2 {

class DistributedContext;

// Runs `train`. Throws BadInput / RuntimeFailure; returns the process exit status on success.
int run_training(TrainOptions options, DistributedContext& dist);

}  // namespace llama2

// Owns the command line: CLI11 subcommands (train, plan, prepare-data, train-tokenizer, eval, export-hf, gemm-peak), their options and defaults, and the mapping
// of errors to exit statuses (2 bad input, 1 runtime failure).
#pragma once

namespace llama2 {

int run_cli(int argc, char** argv);

}  // namespace llama2

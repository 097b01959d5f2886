// llama2_pretrain: entry point. Everything happens in run_cli (src/cli.cpp).
#include "llama2/cli.h"

int main(int argc, char** argv) { return llama2::run_cli(argc, argv); }

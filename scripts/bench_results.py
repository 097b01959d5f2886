"""The benchmarks' reading of a training run (scripts/bench.sh, scripts/bench_compare.sh): the lm_head + loss
phase's rate from the run's results.json and the model's config.json."""


def loss_gflops(results, config):
    """The lm_head's 6·tokens·h·V/tp FLOPs per step on a rank (forward, data and weight gradients) over the loss
    phase's seconds per step; NaN for a run that timed no loss phase."""
    phase = results.get("phase_seconds_per_step", {}).get("loss", 0)
    if phase <= 0:
        return float("nan")
    tokens = results["tokens_per_s"] * results["step_seconds"] / results["dp"]  # one DP replica's tokens a step
    vocab_per_rank = -(-config["vocab_size"] // results["tp"])
    return 6.0 * tokens * config["hidden_size"] * vocab_per_rank / phase / 1e9

"""Rule train_baseline: the DCASE2025 audio-only baseline."""
import logging

from textseld.train.runs import train_baseline

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
train_baseline(
    run_dir=snakemake.params.run_dir,
    train_h5=snakemake.input.train,
    stats_h5=snakemake.input.stats,
    model_cfg=snakemake.params.models,
    train_cfg={**snakemake.params.train, "torch_threads": snakemake.threads},
    seed=int(snakemake.wildcards.seed),
    on_config_change="restart",  # Snakemake decided the run is stale
)

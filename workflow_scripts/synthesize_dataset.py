"""Rule synthesize_dataset: the embedded synthetic dataset (DCASE2025 layout)."""
import logging

from textseld.data.synthesis import synthesize_dataset

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
cfg = snakemake.params.synthesis
synthesize_dataset(
    snakemake.params.root,
    train_clips=cfg["train_clips"],
    test_clips=cfg["test_clips"],
    seed=cfg["seed"],
    speech_backend=cfg["speech_backend"],
    workers=snakemake.threads,  # the output does not depend on it
    progress=False,
)

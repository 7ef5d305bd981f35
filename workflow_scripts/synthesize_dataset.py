"""Rule synthesize_dataset: the embedded synthetic dataset (DCASE2025 layout)."""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.data.synthesis import synthesize_dataset

cfg = snakemake.params.synthesis
synthesize_dataset(
    snakemake.params.root,
    train_clips=cfg["train_clips"],
    test_clips=cfg["test_clips"],
    seed=cfg["seed"],
    speech_backend=cfg["speech_backend"],
    scene=cfg["scene"],  # how hard the scenes are (SceneConfig keys)
    workers=snakemake.threads,  # the output does not depend on it
    progress=True,  # into the log
)

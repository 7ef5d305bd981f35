"""Rule alignment: one text run's alignment diagnostics on the test split (A from audio against
A of the frame's ground-truth sentence: mean cosine, retrieval ranks, chance levels)."""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.metrics.alignment import run_alignment

run_alignment(
    run_dir=snakemake.params.run_dir,
    features_h5=snakemake.input.test,
    stats_h5=snakemake.input.stats,
    texts_h5=snakemake.input.texts,
    sentences_h5=snakemake.input.sentences,
    out=snakemake.output.alignment,
    encoded_h5=next(iter(snakemake.input.encoded), None),  # a fixed tokenizer's test outputs, if any
    threads=snakemake.threads,
)

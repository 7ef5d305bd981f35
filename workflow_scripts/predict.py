"""Rule predict: DCASE CSVs of one run on the test split (selected checkpoint)."""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.train.predict import predict_split

predict_split(
    run_dir=snakemake.params.run_dir,
    features_h5=snakemake.input.test,
    stats_h5=snakemake.input.stats,
    out_dir=snakemake.params.predictions,
    manifest=snakemake.output.manifest,
    checkpoint="best",
    threads=snakemake.threads,
    encoded_h5=next(iter(snakemake.input.encoded), None),  # a fixed tokenizer's test encodings, if any
)

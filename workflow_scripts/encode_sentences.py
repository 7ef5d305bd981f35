"""Rule encode_sentences: the frozen text encoder's fixed-template outputs of one part
({part}: the validation, training or test clips), from the fixed pretrained tokenizer's tokens."""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.train.encode import encode_sentences

part = snakemake.wildcards.part  # validation | train | test
features = {"test_h5" if part == "test" else "train_h5": snakemake.input.features}
encode_sentences(
    pretrained_dir=snakemake.params.pretrained_dir,
    text=snakemake.wildcards.txt,
    text_cfg=snakemake.params.text_encoder,
    stats_h5=snakemake.input.stats,
    split=snakemake.params.split,  # the validation split shared by every run (None for test)
    **features,
    **{f"{part}_out": snakemake.output.encoded},  # validation_out, train_out or test_out
    threads=snakemake.threads,
    device=snakemake.params.device,
)

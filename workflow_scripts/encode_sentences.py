"""Rule encode_sentences: the frozen text encoder's fixed-template outputs of the validation and
test clips (and of the training clips, for fixed training templates), from the fixed pretrained
tokenizer's tokens."""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.train.encode import encode_sentences

encode_sentences(
    pretrained_dir=snakemake.params.pretrained_dir,
    text=snakemake.wildcards.txt,
    text_cfg=snakemake.params.text_encoder,
    stats_h5=snakemake.input.stats,
    train_h5=snakemake.input.train,
    split=snakemake.params.split,  # the validation split shared by every run
    validation_out=snakemake.output.validation,
    test_h5=snakemake.input.test,
    test_out=snakemake.output.test,
    train_out=snakemake.output.get("train"),  # only for fixed training templates
    threads=snakemake.threads,
    device=snakemake.params.device,
)

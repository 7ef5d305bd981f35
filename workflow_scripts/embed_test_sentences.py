"""Rule embed_test_sentences: the frozen text encoder's A of every distinct ground-truth sentence
of the test split (fixed templates), once per text encoder, for the alignment diagnostics."""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.metrics.alignment import embed_test_sentences

embed_test_sentences(
    text=snakemake.wildcards.txt,
    text_cfg=snakemake.params.text_encoder,
    texts_h5=snakemake.input.texts,
    out=snakemake.output.sentences,
    threads=snakemake.threads,
)

"""Rule make_texts: the ground-truth text store of one packed split."""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.text.store import build_text_store

build_text_store(features_path=snakemake.input.packed, out_path=snakemake.output.texts)

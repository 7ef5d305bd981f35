"""Rule download_pretrained: fetch one named set of pretrained weights (local rule, network)."""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.models.pretrained import fetch_weights

fetch_weights(out_dir=snakemake.params.out, **snakemake.params.fetch)

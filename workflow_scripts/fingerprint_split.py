"""Rule fingerprint_split: the content fingerprint of one split's audio and label files."""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.data.fingerprint import write_fingerprint

write_fingerprint(snakemake.output.fingerprint, root=snakemake.params.root, folders=snakemake.params.folders)

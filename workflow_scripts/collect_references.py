"""Rule collect_references: the test split's reference CSVs in one folder."""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.data.layout import collect_references

collect_references(folders=snakemake.params.folders, out=snakemake.output.refs)

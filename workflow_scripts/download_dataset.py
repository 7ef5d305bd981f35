"""Rule download_dataset: the DCASE2025 Stereo SELD data from Zenodo (verified, extracted)."""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.data.download import download_record

download_record(
    snakemake.params.root,
    **snakemake.params.download,  # record, files: omitted ones keep the library's (DCASE2025 Stereo SELD)
    progress=True,  # into the log
)

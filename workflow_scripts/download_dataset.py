"""Rule download_dataset: the DCASE2025 Stereo SELD data from Zenodo (verified, extracted)."""
import logging

from textseld.data.download import download_record

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
cfg = snakemake.params.download
download_record(
    snakemake.params.root,
    record=cfg["record"],
    files=cfg["files"],
    progress=False,
)

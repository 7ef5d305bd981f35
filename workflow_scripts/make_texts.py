"""Rule make_texts: the ground-truth text store of one packed split."""
import logging

from textseld.text.store import build_text_store

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
build_text_store(features_path=snakemake.input.packed, out_path=snakemake.output.texts)

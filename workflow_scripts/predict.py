"""Rule predict: DCASE CSVs of one run on the test split (selected checkpoint)."""
import logging

from textseld.train.predict import predict_split

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
predict_split(
    run_dir=snakemake.params.run_dir,
    features_h5=snakemake.input.test,
    stats_h5=snakemake.input.stats,
    out_dir=snakemake.output.predictions,
    checkpoint="best",
)

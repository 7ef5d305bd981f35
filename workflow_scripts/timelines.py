"""Rule timelines: reference against prediction over time for a few test clips, one system."""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.timelines import plot_clip_timelines

clips = plot_clip_timelines(
    ref_dir=snakemake.input.refs,
    pred_dir=snakemake.params.predictions,
    out=snakemake.output.figure,
    n_clips=snakemake.params.n_clips,
    title=snakemake.params.title,
)
print("clips:", ", ".join(clips))

"""Decoding, DCASE output files and SELD scoring.

- `decode`: multi-ACCDOA network output -> event rows.
- `predictions`: event rows -> one DCASE CSV per clip.
- `seld`: F20°/1, DOAE, RDE under the `dcase2025` and `strict` protocols.
- `assignment`: batched minimum-cost assignment (scipy-exact) used by `seld`.
- `bootstrap`: confidence intervals by resampling clips.
"""

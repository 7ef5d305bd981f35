"""Packed HDF5 files: shard writing, merging, statistics, PackedDataset, CLI end to end."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch

from textseld.cli import main as cli_main
from textseld.constants import CLIP_SAMPLES, N_FEAT_FRAMES, N_MELS, SAMPLE_RATE
from textseld.data import hdf5
from textseld.data.hdf5 import PackedDataset, PackedFileError, PackedWriter, compute_stats, merge_shards
from textseld.data.labels import write_labels
from textseld.data.targets import build_targets

T, F = N_FEAT_FRAMES, N_MELS
DATASETS = ("names", "src", "doa", "dist", "targets", "label_rows", "label_offsets")


def fake_clip(rng, name_index: int):
    """Random features and a few label rows for one clip."""
    name = f"fold3_room1_mix{name_index:03d}_deg000_start0000"
    n_rows = int(rng.integers(0, 4))
    rows = np.stack(
        [
            rng.integers(0, 50, n_rows),
            rng.integers(0, 13, n_rows),
            np.arange(n_rows),
            rng.integers(-90, 91, n_rows),
            rng.integers(50, 500, n_rows),
            np.ones(n_rows),
        ],
        1,
    )
    rows = rows.astype(np.float64).reshape(-1, 6)
    feats = {
        "src": rng.normal(-40, 10, (1, T, F)),
        "doa": rng.normal(0, 5, (4, T, F)),
        "dist": rng.normal(-50, 8, (2, T, F)),
    }
    return name, {k: v.astype(np.float32) for k, v in feats.items()}, build_targets(rows), rows


def write_fake(path, clips, split="dev-train-synth"):
    with PackedWriter(path, split, '{"test": 1}') as w:
        for start in range(0, len(clips), 2):
            part = clips[start : start + 2]
            w.append(
                [c[0] for c in part],
                *(np.stack([c[1][k] for c in part]) for k in ("src", "doa", "dist")),
                np.stack([c[2] for c in part]),
                [c[3] for c in part],
            )


def assert_same_file(a, b):
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert set(fa.keys()) == set(fb.keys()) == set(DATASETS)
        for key in DATASETS:
            np.testing.assert_array_equal(fa[key][:], fb[key][:], err_msg=key)
        assert dict(fa.attrs) == dict(fb.attrs)


@pytest.fixture()
def fake_clips():
    rng = np.random.default_rng(0)
    return [fake_clip(rng, i) for i in range(7)]


def test_merge_order_independent_of_sharding(tmp_path, fake_clips):
    write_fake(tmp_path / "one.h5", fake_clips)
    # three shards, given in scrambled order, one of them empty
    write_fake(tmp_path / "s0.h5", fake_clips[:3])
    write_fake(tmp_path / "s1.h5", fake_clips[3:])
    write_fake(tmp_path / "s2.h5", [])
    n1 = merge_shards([tmp_path / "one.h5"], tmp_path / "packed1.h5", batch_size=3)
    n3 = merge_shards(
        [tmp_path / "s1.h5", tmp_path / "s2.h5", tmp_path / "s0.h5"], tmp_path / "packed3.h5", batch_size=2
    )
    assert n1 == n3 == 7
    assert_same_file(tmp_path / "packed1.h5", tmp_path / "packed3.h5")
    with h5py.File(tmp_path / "packed3.h5", "r") as f:
        assert list(f["names"].asstr()[:]) == [c[0] for c in fake_clips]
        assert f.attrs["split"] == "dev-train-synth"
        assert f["src"].chunks == (1, 1, T, F)
        off = f["label_offsets"][:]
        for i, clip in enumerate(fake_clips):
            np.testing.assert_array_equal(f["label_rows"][off[i] : off[i + 1]], clip[3])
            np.testing.assert_array_equal(f["doa"][i], clip[1]["doa"])
            np.testing.assert_array_equal(f["targets"][i], clip[2])


def test_duplicate_clip_across_shards_is_an_error(tmp_path, fake_clips):
    write_fake(tmp_path / "a.h5", fake_clips[:3])
    write_fake(tmp_path / "b.h5", fake_clips[2:4])
    with pytest.raises(PackedFileError, match=f"{fake_clips[2][0]} occurs in .*a.h5 and in .*b.h5"):
        merge_shards([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_writer_rejects_unsorted_names(tmp_path, fake_clips):
    with pytest.raises(ValueError, match="strictly increasing"):
        write_fake(tmp_path / "bad.h5", fake_clips[::-1])
    assert list(tmp_path.iterdir()) == []  # no final file, no temporary left behind


def test_interrupted_pack_leaves_no_file(tmp_path, fake_clips, monkeypatch):
    write_fake(tmp_path / "s0.h5", fake_clips)
    calls = {"n": 0}
    real_append = PackedWriter.append

    def failing_append(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_append(self, *args, **kwargs)

    monkeypatch.setattr(PackedWriter, "append", failing_append)
    with pytest.raises(KeyboardInterrupt):
        merge_shards([tmp_path / "s0.h5"], tmp_path / "packed.h5", batch_size=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s0.h5"]


def test_stats_match_numpy_on_training_file(tmp_path, fake_clips):
    write_fake(tmp_path / "train.h5", fake_clips)
    stats = compute_stats(tmp_path / "train.h5", tmp_path / "stats.h5", batch_size=3)
    read = hdf5.read_stats(tmp_path / "stats.h5")
    for key in ("src", "doa", "dist"):
        x = np.stack([c[1][key] for c in fake_clips]).astype(np.float64)  # (N, C, T, F)
        np.testing.assert_allclose(stats[key][0], x.mean(axis=(0, 2)), rtol=1e-10)
        np.testing.assert_allclose(stats[key][1], x.std(axis=(0, 2)), rtol=1e-10)
        np.testing.assert_allclose(read[key][0], x.mean(axis=(0, 2)), rtol=1e-6)
        assert read[key][1].shape == (hdf5.CHANNELS[key], F)
    # a subset (e.g. without the validation clips)
    sub = compute_stats(tmp_path / "train.h5", tmp_path / "stats_sub.h5", indices=[0, 4, 5])
    x = np.stack([fake_clips[i][1]["doa"] for i in (0, 4, 5)]).astype(np.float64)
    np.testing.assert_allclose(sub["doa"][1], x.std(axis=(0, 2)), rtol=1e-10)


def test_packed_dataset_items_and_standardisation(tmp_path, fake_clips):
    write_fake(tmp_path / "train.h5", fake_clips)
    compute_stats(tmp_path / "train.h5", tmp_path / "stats.h5")
    raw = PackedDataset(tmp_path / "train.h5", indices=[5, 1])
    assert raw._file is None  # nothing opened in __init__
    assert len(raw) == 2 and raw.names == [c[0] for c in fake_clips]
    item = raw[0]
    assert item["index"] == 5 and item["name"] == fake_clips[5][0]
    assert item["src"].shape == (1, T, F) and item["doa"].shape == (4, T, F) and item["dist"].shape == (2, T, F)
    assert item["target"].shape == (50, 6, 4, 13)
    np.testing.assert_array_equal(item["doa"].numpy(), fake_clips[5][1]["doa"])
    np.testing.assert_array_equal(raw.label_rows(5), fake_clips[5][3])
    norm = PackedDataset(tmp_path / "train.h5", stats_path=tmp_path / "stats.h5")
    doa = torch.stack([norm[i]["doa"] for i in range(len(norm))])  # (N, 4, T, F)
    np.testing.assert_allclose(doa.mean(dim=(0, 2)).numpy(), 0, atol=1e-4)
    np.testing.assert_allclose(doa.std(dim=(0, 2), unbiased=False).numpy(), 1, atol=1e-4)


def test_packed_dataset_with_worker_processes(tmp_path, fake_clips):
    write_fake(tmp_path / "train.h5", fake_clips)
    ds = PackedDataset(tmp_path / "train.h5")
    _ = ds[0]  # the parent has a handle open before the workers fork
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, shuffle=False)
    batches = list(loader)
    names = [n for b in batches for n in b["name"]]
    assert names == [c[0] for c in fake_clips]
    src = torch.cat([b["src"] for b in batches])
    np.testing.assert_array_equal(src.numpy(), np.stack([c[1]["src"] for c in fake_clips]))


def test_missing_or_foreign_file(tmp_path):
    with pytest.raises(PackedFileError, match="nope.h5"):
        PackedDataset(tmp_path / "nope.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(PackedFileError, match="other.h5.*not a packed feature file"):
        merge_shards([tmp_path / "other.h5"], tmp_path / "out.h5")


def _tiny_dataset(root, n=3):
    rng = np.random.default_rng(5)
    split = "dev-train-synth"
    (root / "stereo_dev" / split).mkdir(parents=True)
    (root / "metadata_dev" / split).mkdir(parents=True)
    for i in range(n):
        name = f"fold3_room2_mix{i:03d}_deg000_start0000"
        audio = rng.standard_normal((CLIP_SAMPLES, 2)) * 0.1 * np.array([1.0, 0.5])
        sf.write(root / "stereo_dev" / split / f"{name}.wav", audio, SAMPLE_RATE, subtype="PCM_16")
        rows = np.array([[f, i % 13, 0, 30 - 10 * i, 150 + i, 1] for f in range(0, 50, 7)], dtype=np.float64)
        write_labels(root / "metadata_dev" / split / f"{name}.csv", rows)
    return split


def test_cli_features_and_pack_end_to_end(tmp_path):
    split = _tiny_dataset(tmp_path / "data")
    d = str(tmp_path / "data")
    assert (
        cli_main(
            ["extract-features", "--data", d, "--split", split, "--out", str(tmp_path / "all.h5"), "--batch-size", "2"]
        )
        == 0
    )
    for i in range(3):
        assert (
            cli_main(
                [
                    "extract-features",
                    "--data",
                    d,
                    "--split",
                    split,
                    "--out",
                    str(tmp_path / f"sh{i}.h5"),
                    "--shard",
                    f"{i}/3",
                ]
            )
            == 0
        )
    assert cli_main(["pack-features", "--shards", str(tmp_path / "all.h5"), "--out", str(tmp_path / "p1.h5")]) == 0
    assert cli_main(["feature-stats", "--features", str(tmp_path / "p1.h5"), "--out", str(tmp_path / "stats.h5")]) == 0
    assert (
        cli_main(  # shards in any order
            [
                "pack-features",
                "--shards",
                *(str(tmp_path / f"sh{i}.h5") for i in (2, 0, 1)),
                "--out",
                str(tmp_path / "p3.h5"),
            ]
        )
        == 0
    )
    assert_same_file(tmp_path / "p1.h5", tmp_path / "p3.h5")
    ds = PackedDataset(tmp_path / "p1.h5", stats_path=tmp_path / "stats.h5")
    assert len(ds) == 3 and ds.names[1] == "fold3_room2_mix001_deg000_start0000"
    item = ds[1]
    assert torch.isfinite(item["doa"]).all()
    rows = ds.label_rows(1)
    assert rows.shape == (8, 6) and np.all(rows[:, 3] == 20)
    np.testing.assert_allclose(item["target"][0, 0, 3, 1].item(), 1.51, rtol=1e-6)  # metres
    with h5py.File(tmp_path / "p1.h5", "r") as f:
        assert "wpe" in f.attrs["feature_config"] and f.attrs["split"] == split
        # the right channel is 6 dB quieter: ILD ~ +6 dB in doa channel 3
        assert 5.0 < float(np.mean(f["doa"][:, 3])) < 7.0
    assert (
        cli_main(["extract-features", "--data", d, "--split", split, "--out", str(tmp_path / "x.h5"), "--shard", "3/3"])
        == 1
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where no GPU is visible")
def test_features_on_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    from textseld.features.pipeline import extract_shard

    split = _tiny_dataset(tmp_path / "data")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        extract_shard(tmp_path / "data", [split], tmp_path / "x.h5", device="cuda")
    assert not (tmp_path / "x.h5").exists()


def test_training_stats_exclude_the_validation_clips_and_record_the_split(tmp_path, fake_clips):
    from textseld.data.splits import SplitConfig, check_stats_split, compute_training_stats

    write_fake(tmp_path / "train.h5", fake_clips)  # 7 clips, 7 recordings
    names = [c[0] for c in fake_clips]
    split = SplitConfig(fraction=0.3, seed=0)
    train_idx, val_idx = split.indices(names)
    assert len(val_idx) == 2
    stats = compute_training_stats(tmp_path / "train.h5", tmp_path / "stats.h5", {"fraction": 0.3, "seed": 0})
    for key in ("src", "doa", "dist"):
        x = np.stack([fake_clips[i][1][key] for i in train_idx]).astype(np.float64)
        np.testing.assert_allclose(stats[key][0], x.mean(axis=(0, 2)), rtol=1e-10)
        np.testing.assert_allclose(stats[key][1], x.std(axis=(0, 2)), rtol=1e-10)
        everything = np.stack([c[1][key] for c in fake_clips]).astype(np.float64)
        assert not np.allclose(stats[key][0], everything.mean(axis=(0, 2)), rtol=1e-6)
    with h5py.File(tmp_path / "stats.h5", "r") as g:
        assert g.attrs["n_clips"] == len(train_idx)
    check_stats_split(tmp_path / "stats.h5", split, names, tmp_path / "train.h5")  # the same split: fine
    with pytest.raises(
        ValueError,
        match=r"stats\.h5: computed on another training part .*seed: 0 in the "
        r"statistics, 1 here",
    ):
        check_stats_split(tmp_path / "stats.h5", SplitConfig(0.3, 1), names, tmp_path / "train.h5")
    compute_stats(tmp_path / "train.h5", tmp_path / "all.h5")
    with pytest.raises(ValueError, match=r"all\.h5: records no validation split"):
        check_stats_split(tmp_path / "all.h5", split, names, tmp_path / "train.h5")


def test_feature_stats_cli_uses_the_shared_split(tmp_path, fake_clips):
    from textseld.data.splits import SplitConfig

    write_fake(tmp_path / "s0.h5", fake_clips)
    assert cli_main(["pack-features", "--shards", str(tmp_path / "s0.h5"), "--out", str(tmp_path / "p.h5")]) == 0
    argv = ["feature-stats", "--features", str(tmp_path / "p.h5"), "--out", str(tmp_path / "stats.h5")]
    assert cli_main([*argv, "--val-fraction", "0.3", "--split-seed", "2"]) == 0
    train_idx, _ = SplitConfig(0.3, 2).indices([c[0] for c in fake_clips])
    x = np.stack([fake_clips[i][1]["dist"] for i in train_idx]).astype(np.float64)
    np.testing.assert_allclose(hdf5.read_stats(tmp_path / "stats.h5")["dist"][0], x.mean(axis=(0, 2)), rtol=1e-6)


# ------------------------------------------------- damage is an error naming the file
def _chunk_offset(path, key: str, index: int) -> tuple[int, int]:
    import h5py

    with h5py.File(path, "r") as f:
        info = f[key].id.get_chunk_info_by_coord((index, 0, 0, 0)[: f[key].ndim])
        return info.byte_offset, info.size


def test_damaged_feature_chunk_is_an_error_naming_the_file(tmp_path):
    """Fletcher32 on the feature datasets: garbage in a chunk is not read as features."""
    import h5py

    from textseld.data.hdf5 import PackedDataset, PackedFileError, PackedWriter
    from textseld.data.targets import build_targets

    path = tmp_path / "train.h5"
    rng = np.random.default_rng(0)
    names = ["fold3_room1_mix001_deg000_start0000", "fold3_room1_mix001_deg000_start0001"]
    rows = [np.zeros((0, 6)), np.asarray([[3, 1, 0, 20, 150, 0]], dtype=np.float64)]
    with PackedWriter(path, "dev-train", "{}") as w:
        w.append(
            names,
            *(rng.normal(size=(2, c, N_FEAT_FRAMES, N_MELS)).astype(np.float32) for c in (1, 4, 2)),
            np.stack([build_targets(r) for r in rows]),
            rows,
        )
    with h5py.File(path, "r") as f:
        assert all(f[k].fletcher32 for k in ("src", "doa", "dist", "targets", "label_rows"))
    assert PackedDataset(path)[1]["name"] == names[1]
    offset, size = _chunk_offset(path, "doa", 1)
    with open(path, "r+b") as fh:
        fh.seek(offset + size // 2)
        fh.write(b"\x7f" * 64)
    data = PackedDataset(path)
    assert data[0]["name"] == names[0]  # other chunks still read
    with pytest.raises(PackedFileError, match=rf"{path}: cannot read clip 1 .*filter returned failure"):
        data[1]


def test_damaged_index_is_an_error_naming_the_file(tmp_path):
    from textseld.data.hdf5 import TARGET_SHAPE, read_names

    path = tmp_path / "test.h5"
    with PackedWriter(path, "dev-test", "{}") as w:
        w.append(
            ["a"],
            *(np.zeros((1, c, N_FEAT_FRAMES, N_MELS), np.float32) for c in (1, 4, 2)),
            np.zeros((1, *TARGET_SHAPE), np.float32),
            [np.zeros((0, 6))],
        )
    raw = bytearray(path.read_bytes())
    raw[800:4800] = b"\x00" * 4000  # after the superblock: object headers and chunk indices
    path.write_bytes(bytes(raw))
    errors = []
    for call in (lambda: read_names(path), lambda: PackedDataset(path)[0], lambda: PackedDataset(path).label_rows(0)):
        try:
            call()
        except Exception as exc:  # any failure: each is checked below
            errors.append(exc)
    assert errors
    assert all(isinstance(e, PackedFileError) and str(path) in str(e) for e in errors), errors


def test_packed_writer_removes_what_a_killed_writer_left(tmp_path):
    """`textseld features` killed mid-write leaves .train.h5.<random>.h5.tmp; the next write of
    train.h5 removes it (at paper scale hundreds of MB per shard)."""
    from textseld.data.hdf5 import TARGET_SHAPE

    stale = tmp_path / ".train.h5.k1ll3d.h5.tmp"
    stale.write_bytes(b"\x00" * 1024)
    keep = tmp_path / ".test.h5.k1ll3d.h5.tmp"  # another target's: not ours to remove
    keep.write_bytes(b"")
    with PackedWriter(tmp_path / "train.h5", "dev-train", "{}") as w:
        w.append(
            ["a"],
            *(np.zeros((1, c, N_FEAT_FRAMES, N_MELS), np.float32) for c in (1, 4, 2)),
            np.zeros((1, *TARGET_SHAPE), np.float32),
            [np.zeros((0, 6))],
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == [".test.h5.k1ll3d.h5.tmp", "train.h5"]

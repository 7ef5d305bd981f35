"""Tests of textseld.data.layout: pairing by stem, errors naming both sides."""

from __future__ import annotations

import pytest

from textseld.data.layout import Clip, DatasetError, available_splits, list_clips, parse_clip_name


def _touch(root, split, stems, wav=True, csv=True):
    for stem in stems:
        if wav:
            p = root / "stereo_dev" / split / f"{stem}.wav"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"")
        if csv:
            p = root / "metadata_dev" / split / f"{stem}.csv"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("")


A = "fold3_room4_mix001_deg000_start0000"
B = "fold3_room4_mix002_deg090_start0100"
C = "fold3_room21_mix010_deg270_start1234"


def test_pairs_by_stem_sorted(tmp_path):
    _touch(tmp_path, "dev-train-tau", [C, A])
    _touch(tmp_path, "dev-train-sony", [B])
    clips = list_clips(tmp_path, ["dev-train-tau", "dev-train-sony"])
    assert [c.name for c in clips] == sorted([A, B, C])
    for clip in clips:
        assert isinstance(clip, Clip)
        assert clip.wav.stem == clip.name == clip.csv.stem
        assert clip.wav.parent.name == clip.split == clip.csv.parent.name
    assert {c.name: c.split for c in clips}[B] == "dev-train-sony"
    with pytest.raises(AttributeError):
        clips[0].name = "x"  # frozen


def test_one_missing_file_does_not_shift_pairs(tmp_path):
    # Sort-order pairing would pair A.wav with B.csv here; pairing by stem reports it.
    _touch(tmp_path, "s", [A, B, C], csv=False)
    _touch(tmp_path, "s", [B, C], wav=False)
    with pytest.raises(DatasetError) as err:
        list_clips(tmp_path, ["s"])
    msg = str(err.value)
    assert str(tmp_path / "stereo_dev" / "s" / f"{A}.wav") in msg
    assert str(tmp_path / "metadata_dev" / "s" / f"{A}.csv") in msg
    assert B not in msg and C not in msg


def test_csv_without_wav_names_both(tmp_path):
    _touch(tmp_path, "s", [A])
    _touch(tmp_path, "s", [B], wav=False)
    with pytest.raises(DatasetError) as err:
        list_clips(tmp_path, ["s"])
    msg = str(err.value)
    assert str(tmp_path / "metadata_dev" / "s" / f"{B}.csv") in msg
    assert str(tmp_path / "stereo_dev" / "s" / f"{B}.wav") in msg


def test_missing_split_folder(tmp_path):
    _touch(tmp_path, "a", [A])
    with pytest.raises(DatasetError, match="dev-test-tau"):
        list_clips(tmp_path, ["a", "dev-test-tau"])
    (tmp_path / "metadata_dev" / "a").rename(tmp_path / "metadata_dev" / "b")
    with pytest.raises(DatasetError, match=r"metadata_dev/a"):
        list_clips(tmp_path, ["a"])


def test_duplicate_name_across_splits(tmp_path):
    _touch(tmp_path, "a", [A])
    _touch(tmp_path, "b", [A])
    with pytest.raises(DatasetError, match=f"{A} is also in split 'a'"):
        list_clips(tmp_path, ["a", "b"])


def test_ignores_other_files_and_lists_splits(tmp_path):
    _touch(tmp_path, "a", [A])
    (tmp_path / "stereo_dev" / "a" / "notes.txt").write_text("x")
    _touch(tmp_path, "b", [B], wav=False)
    assert [c.name for c in list_clips(tmp_path, "a")] == [A]
    assert available_splits(tmp_path) == ["a", "b"]


def test_parse_clip_name():
    assert parse_clip_name(C) == dict(fold=3, room=21, mix=10, deg=270, start=1234)
    assert parse_clip_name(f"/x/y/{A}.wav")["mix"] == 1
    for bad in [
        "fold3_room4_mix01_deg000_start0000",
        "fold3_room4_mix001_deg000",
        "foo",
        A + "_extra",
        "fold3_roomX_mix001_deg000_start0000",
    ]:
        with pytest.raises(DatasetError, match="fold\\{F\\}"):
            parse_clip_name(bad)


def test_collect_references_copies_the_csvs_and_refuses_bad_folders(tmp_path):
    from textseld.data.layout import DatasetError, collect_references

    for split, stems in (("dev-test-a", ["x1", "x2"]), ("dev-test-b", ["y1"])):
        (tmp_path / "meta" / split).mkdir(parents=True)
        for stem in stems:
            (tmp_path / "meta" / split / f"{stem}.csv").write_text(f"{stem}\n")
    (tmp_path / "meta" / "dev-test-a" / "notes.txt").write_text("not a label file")
    out = tmp_path / "refs" / "test"
    out.mkdir(parents=True)
    (out / "old.csv").write_text("from an earlier run")  # replaced as a whole
    collect_references(folders=[tmp_path / "meta" / "dev-test-a", tmp_path / "meta" / "dev-test-b"], out=out)
    got = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert got == ["dev-test-a/x1.csv", "dev-test-a/x2.csv", "dev-test-b/y1.csv"]
    assert (out / "dev-test-b" / "y1.csv").read_text() == "y1\n"
    assert [p.name for p in (tmp_path / "refs").iterdir()] == ["test"]  # no temporary left
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty: expected a folder of reference CSV"):
        collect_references(folders=[tmp_path / "empty"], out=tmp_path / "r2")
    with pytest.raises(DatasetError, match="share a name"):
        collect_references(folders=[tmp_path / "meta" / "dev-test-a"] * 2, out=tmp_path / "r3")
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()

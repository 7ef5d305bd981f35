"""TextStore and `textseld make-texts` on a tiny packed features file."""

import pickle

import h5py
import numpy as np
import pytest

from textseld.cli import main
from textseld.text.sentences import fixed_template, frame_events, render_sentence
from textseld.text.store import TextStore, TextStoreError, build_text_store

NAMES = ["fold3_room1_mix001", "fold3_room1_mix002", "fold3_room2_mix001"]
ROWS = [
    np.array([[0, 1, 0, 30, 350, 0], [0, 0, 0, -60, 300, 0], [7, 12, 0, 10, 500, 1]], float),
    np.zeros((0, 6)),
    np.array([[49, 8, 0, -90, 42, 0]], float),
]


def write_features(path, names=NAMES, rows=ROWS):
    """The packed-features contract (docs/INTERFACES.md): only what texts need."""
    off = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    with h5py.File(path, "w") as f:
        f.create_dataset("names", data=np.array(names, dtype=object), dtype=h5py.string_dtype("utf-8"))
        f.create_dataset("label_rows", data=np.concatenate(rows).reshape(-1, 6))
        f.create_dataset("label_offsets", data=off)
    return path


def test_build_and_read(tmp_path):
    feats = write_features(tmp_path / "train.h5")
    out = build_text_store(feats, tmp_path / "texts.h5")
    store = TextStore(out)
    assert store.names == NAMES and len(store) == 3 and store.n_frames == 50
    for i, name in enumerate(NAMES):
        tid = fixed_template(name)
        assert store.fixed_template(i) == tid
        expected = [render_sentence(evs, tid) for evs in frame_events(ROWS[i])]
        assert store.fixed_sentences(i) == expected
        assert store.sentences(i, tid) == expected
        for t in (0, 17, 49):
            assert store.sentence(i, 0, t) == render_sentence(frame_events(ROWS[i])[0], t)
    assert store.sentence(0, 0, 0) == (
        "The sound of woman and man comes from directions -60° and 30°, approximately 3 m and 3.5 m away, respectively."
    )
    assert store.sentence(2, 49, 0) == "The sound of music comes from direction -90°, approximately 0.4 m away."
    # Frames without events: the no-sound sentence of the template.
    assert store.sentence(1, 10, 3) == render_sentence([], 3)
    with pytest.raises(IndexError):
        store.sentence(3, 0, 0)
    # Picklable for DataLoader workers even after the lazy handle was opened.
    clone = pickle.loads(pickle.dumps(store))
    assert clone.fixed_sentences(2) == store.fixed_sentences(2)


def test_cli(tmp_path):
    feats = write_features(tmp_path / "f.h5")
    assert main(["make-texts", "--features", str(feats), "--out", str(tmp_path / "t" / "texts.h5")]) == 0
    assert (
        TextStore(tmp_path / "t" / "texts.h5")
        .fixed_sentences(0)[7]
        .startswith(render_sentence([(12, 10, 5)], fixed_template(NAMES[0]))[:10])
    )
    assert [p.name for p in (tmp_path / "t").iterdir()] == ["texts.h5"]  # no temp files left


def test_bad_inputs(tmp_path):
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f.create_dataset("names", data=np.array(["a"], dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("label_rows", data=np.zeros((1, 6)))
        f.create_dataset("label_offsets", data=np.array([0, 2]))
    with pytest.raises(TextStoreError, match="bad.h5.*label_offsets"):
        build_text_store(bad, tmp_path / "x.h5")
    frame_oob = write_features(tmp_path / "oob.h5", ["c"], [np.array([[60, 0, 0, 0, 100, 0]], float)])
    with pytest.raises(TextStoreError, match="oob.h5.*'c'.*frame"):
        build_text_store(frame_oob, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()
    # A store made with other templates is refused.
    good = build_text_store(write_features(tmp_path / "g.h5"), tmp_path / "g_texts.h5")
    with h5py.File(good, "a") as f:
        f.attrs["templates_sha256"] = "0" * 64
    with pytest.raises(TextStoreError, match="other sentence templates"):
        TextStore(good)

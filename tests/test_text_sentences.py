"""Templates and sentence rendering (docs/METHOD.md section 4)."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from textseld.constants import CLASS_WORDS
from textseld.text.sentences import (
    fixed_template,
    format_azimuth,
    format_distance,
    frame_events,
    join_words,
    render_sentence,
)
from textseld.text.templates import NO_SOUND, TEMPLATES

MAN, WOMAN, FOOTSTEPS, DOOR, KNOCK = 1, 0, 6, 7, 12


def test_template_counts_and_slots():
    assert len(TEMPLATES) == 50 and len(set(TEMPLATES)) == 50
    assert len(NO_SOUND) == 10 and len(set(NO_SOUND)) == 10
    for t in TEMPLATES:
        slots = re.findall(r"\{(\w*)\}", t)
        assert slots == ["src", "doa", "dist"], t
        assert t.endswith("."), t
        assert t[0].isupper(), t
    for s in NO_SOUND:
        assert "{" not in s and s.endswith(".")


# The paper's four example templates, as the paper prints them.
PAPER_EXAMPLES = (
    "The sound of <SRC> comes from direction <DOA>, approximately <DIST> away.",
    "The sonic impression of <SRC> originates from direction <DOA>, nearly <DIST> distant.",
    "The captured audio of <SRC> is localized at direction <DOA>, about <DIST> away.",
    "The acoustic presence of <SRC> is acoustically detected from direction <DOA>, approximately <DIST> distant.",
)


def test_the_papers_example_templates_are_among_the_50_verbatim():
    ours = {t.format(src="<SRC>", doa="<DOA>", dist="<DIST>") for t in TEMPLATES}
    assert len(ours) == 50
    assert [t for t in PAPER_EXAMPLES if t not in ours] == []


def test_spec_examples():
    assert (
        render_sentence([(MAN, 30, 3.5)], 0) == "The sound of man comes from direction 30°, approximately 3.5 m away."
    )
    # Events are ordered by class (woman = 0 before man = 1), then azimuth.
    assert (
        render_sentence([(MAN, 80, 5.0), (WOMAN, -60, 3.0)], 1)
        == "The sound of woman and man is coming from directions -60° and 80°, "
        "about 3 m and 5 m away, respectively."
    )
    s = render_sentence([(KNOCK, 10, 5), (FOOTSTEPS, 40, 3), (DOOR, -80, 4)], 2)
    assert s == (
        "The sound of footsteps, door, and knock can be heard from directions 40°, -80°, and 10°, "
        "roughly 3 m, 4 m, and 5 m distant, respectively."
    )


def test_order_by_class_then_azimuth_and_input_order_irrelevant():
    evs = [(MAN, 50, 2.0), (WOMAN, 10, 1.0), (MAN, -20, 4.0)]
    s = render_sentence(evs, 0)
    assert "woman, man, and man" in s
    assert "10°, -20°, and 50°" in s
    assert "1 m, 4 m, and 2 m" in s
    assert s == render_sentence(evs[::-1], 0)


def test_number_formats():
    assert format_azimuth(-60) == "-60°" and "\u2212" not in format_azimuth(-60)
    assert format_azimuth(-0.4) == "0°"
    assert format_azimuth(2.5) == "3°" and format_azimuth(-2.5) == "-3°"
    assert format_distance(3.0) == "3 m"
    assert format_distance(3.05) == "3.1 m"
    assert format_distance(3.04) == "3 m"
    assert format_distance(0.96) == "1 m"
    assert format_distance(12.34) == "12.3 m"
    assert join_words(["a"]) == "a"
    assert join_words(["a", "b"]) == "a and b"
    assert join_words(["a", "b", "c", "d"]) == "a, b, c, and d"


def test_every_template_renders_singular_and_plural():
    for tid, t in enumerate(TEMPLATES):
        one = render_sentence([(MAN, 30, 3.5)], tid)
        assert one == t.format(src="man", doa="30°", dist="3.5 m")
        two = render_sentence([(MAN, 30, 3.5), (CLASS_WORDS.index("water tap"), -5, 1.0)], tid)
        assert two.endswith(", respectively.")
        assert "man and water tap" in two and "30° and -5°" in two and "3.5 m and 1 m" in two
        if "direction " in t:
            assert "directions 30° and -5°" in two
        assert "{" not in two and "  " not in two


def test_no_sound():
    for tid in range(50):
        assert render_sentence([], tid) == NO_SOUND[tid % 10]


def test_bad_input():
    with pytest.raises(ValueError, match="template_id"):
        render_sentence([], 50)
    with pytest.raises(ValueError, match="class"):
        render_sentence([(13, 0, 1)], 0)
    with pytest.raises(ValueError, match="frame"):
        frame_events(np.array([[50, 0, 0, 0, 100, 0]]))


def test_frame_events_from_rows():
    rows = np.array(
        [
            [3, MAN, 0, 30, 350, 0],
            [3, WOMAN, 1, -60, 300, 0],
            [3, WOMAN, 0, -70, 123, 1],
            [49, KNOCK, 0, 90, 50, 0],
        ],
        dtype=float,
    )
    frames = frame_events(rows)
    assert len(frames) == 50
    assert frames[3] == [(WOMAN, -70.0, 1.23), (WOMAN, -60.0, 3.0), (MAN, 30.0, 3.5)]
    assert frames[49] == [(KNOCK, 90.0, 0.5)]
    assert sum(len(f) for f in frames) == 4
    assert frame_events(np.zeros((0, 6))) == [[] for _ in range(50)]


def test_fixed_template_is_stable_across_processes():
    names = [f"fold3_room{r}_mix{m:03d}" for r in range(3) for m in range(40)]
    ids = [fixed_template(n) for n in names]
    assert all(0 <= i < 50 for i in ids)
    assert len(set(ids)) > 25  # spread over the templates
    code = f"from textseld.text.sentences import fixed_template;print([fixed_template(n) for n in {names!r}])"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    )
    assert eval(out.stdout) == ids

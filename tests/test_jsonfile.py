"""textseld.jsonfile.read_json_object: the object, or an error of the caller's type naming the file."""

from __future__ import annotations

import pytest

from textseld.jsonfile import read_json_object


class Damaged(ValueError):
    pass


def test_an_object_is_returned_anything_else_names_the_file(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"a": [1]}')
    assert read_json_object(path, "a bad x", "an x") == {"a": [1]}
    path.write_text('{"a": ')
    with pytest.raises(Damaged, match=rf"^{path}: a bad x \(Expecting value.*\); expected an x$"):
        read_json_object(path, "a bad x", "an x", Damaged)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=rf"^{path}: a bad x: expected a JSON object, got list$"):
        read_json_object(path, "a bad x", "an x")
    path.write_bytes(b"\xff\xfe{")
    with pytest.raises(ValueError, match=rf"^{path}: a bad x \("):
        read_json_object(path, "a bad x", "an x")

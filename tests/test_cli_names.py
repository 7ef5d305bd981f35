"""The CLI follows the workflow: one subcommand per rule, named like it, with the same flags for
the same things, choices from the library, defaults in --help; old names and spellings are gone."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from textseld.cli import build_parser, main
from textseld.commands import HelpFormatter

ROOT = Path(__file__).resolve().parents[1]
# Rules without a command: collect_references only copies the reference CSVs; fingerprint_split
# only records what the split's files hold, for the workflow to see data edits.
NOT_COMMANDS = {"collect_references", "fingerprint_split"}


def _rules() -> list[str]:
    names = []
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        names += re.findall(r"^rule (\w+):", smk.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return names


RULE_COMMANDS = [r.replace("_", "-") for r in _rules() if r not in NOT_COMMANDS]


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_rule_has_a_subcommand_of_its_name():
    assert len(RULE_COMMANDS) >= 14
    subs = _subparsers()
    missing = [c for c in RULE_COMMANDS if c not in subs]
    assert not missing, f"rules without a `textseld` subcommand of the same name: {missing}"
    for name in RULE_COMMANDS:  # the rule's name is the primary name, not an alias
        assert subs[name].prog == f"textseld {name}"


@pytest.mark.parametrize("command", RULE_COMMANDS)
def test_help_shows_the_defaults(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith(f"usage: textseld {command} ")
    parser = _subparsers()[command]
    assert issubclass(parser.formatter_class, argparse.ArgumentDefaultsHelpFormatter)
    for action in parser._actions:
        default = action.default
        if action.required or action.help in (None, argparse.SUPPRESS) or default is None or default is False:
            continue
        if isinstance(default, list) and not default:
            continue
        if action.option_strings and default is not argparse.SUPPRESS:
            assert f"(default: {default})" in text, f"{command} {action.option_strings[0]}: default not shown"


def test_every_subcommand_shows_defaults():
    for name, parser in _subparsers().items():
        assert parser.formatter_class is HelpFormatter, name


@pytest.mark.parametrize("command", RULE_COMMANDS)
def test_the_output_is_out_and_threads_are_j(command):
    options = {}
    for action in _subparsers()[command]._actions:
        for s in action.option_strings:
            options[s] = action
    assert "--out" in options, f"{command}: no --out"
    assert options["--out"].option_strings == ["--out"]
    for old in ("--out-dir", "--json", "--workers", "--train-h5", "--stats-out"):
        assert old not in options, f"{command}: still takes the old spelling {old}"
    if command in ("pretrain-tokenizer", "finetune", "train-baseline"):  # the run directory is what they write
        assert "--run-dir" not in options
    if "--threads" in options:
        assert options["--threads"].option_strings[:2] == ["-j", "--threads"]
    if "--features" in options:
        assert options["--features"].option_strings[0] == "--features"


# Old command names and flag spellings: refused (one name per thing).
OLD = [
    ["synth", "--out", "d", "--train-clips", "1", "--test-clips", "1", "--seed", "2"],
    ["synthesize-dataset", "--out", "d", "--train-clips", "1", "--test-clips", "1", "--seed", "2", "--workers", "0"],
    ["download", "--out", "d"],
    ["fetch-weights", "--out", "w"],
    ["features", "--data", "d", "--split", "s", "--out", "x.h5"],
    ["pack", "--shards", "a.h5", "--out", "p.h5"],
    ["pack-features", "--shards", "a.h5", "--out", "p.h5", "--stats-out", "s.h5"],
    ["texts", "--features", "p.h5", "--out", "t.h5"],
    ["pretrain", "--source", "rcc", "--features", "p.h5", "--stats", "s.h5", "--out", "r"],
    ["train-baseline", "--train-h5", "p.h5", "--stats", "s.h5", "--out", "r"],
    ["train-baseline", "--features", "p.h5", "--stats", "s.h5", "--run-dir", "r"],
    ["predict", "--run-dir", "r", "--features", "p.h5", "--out-dir", "o"],
    ["evaluate", "--ref", "m", "--pred", "p", "--json", "e.json"],
    ["aggregate", "--run", *"m 0 a b c".split(), "--out-dir", "o"],
]


@pytest.mark.parametrize("argv", OLD, ids=[" ".join(a[:1] + [x for x in a if x.startswith("--")][-1:]) for a in OLD])
def test_old_names_and_spellings_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert any(why in err for why in ("invalid choice", "unrecognized arguments", "arguments are required: --"))


def test_choices_come_from_the_library():
    from textseld.constants import SPEECH_BACKENDS
    from textseld.models.config import SIZES
    from textseld.train.config import DEVICES

    subs = _subparsers()
    for command, option, owner in [
        ("train-baseline", "--device", DEVICES),
        ("encode-tokens", "--device", DEVICES),
        ("predict", "--device", DEVICES),
        ("train-baseline", "--size", SIZES),
        ("synthesize-dataset", "--speech", SPEECH_BACKENDS),
    ]:
        (action,) = [a for a in subs[command]._actions if option in a.option_strings]
        assert action.choices is owner, (command, option)


def test_finetune_takes_named_options():
    args = build_parser().parse_args(
        "finetune --source rcc --text bert --head trep --texts t.h5 --pretrained pre "
        "--features p.h5 --stats s.h5 --out ft -j 3".split()
    )
    assert (args.source, args.text, args.head, args.pretrained, args.run_dir, args.threads) == (
        "rcc",
        "bert",
        "trep",
        "pre",
        "ft",
        3,
    )


def test_training_curves_command(tmp_path, capsys):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "log.csv").write_text("epoch,step,loss,val_F\n0,3,0.5,0.1\n1,6,0.25,0.2\n")
    out = tmp_path / "fig" / "curves.png"
    out.parent.mkdir()
    argv = ["training-curves", "--run", "A", str(tmp_path / "a"), "--run", "B", str(tmp_path / "b"), "--out", str(out)]
    assert main(argv) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        main(
            ["training-curves", "--run", "A", str(tmp_path / "a"), "--run", "A", str(tmp_path / "b"), "--out", str(out)]
        )
        == 1
    )
    assert "label 'A' given twice" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command, option, function, parameter",
    [
        ("evaluate", "--n-boot", "textseld.metrics.evaluate.evaluate", "n_boot"),
        ("evaluate", "--seed", "textseld.metrics.evaluate.evaluate", "seed"),
        ("aggregate", "--n-boot", "textseld.results.aggregate", "n_boot"),
        ("extract-features", "--batch-size", "textseld.features.pipeline.extract_shard", "batch_size"),
        ("pack-features", "--batch-size", "textseld.data.hdf5.merge_shards", "batch_size"),
        ("feature-stats", "--batch-size", "textseld.data.splits.compute_training_stats", "batch_size"),
        ("encode-tokens", "--batch-size", "textseld.train.encode.encode_tokens", "batch_size"),
        ("encode-sentences", "--batch-size", "textseld.train.encode.encode_sentences", "batch_size"),
    ],
)
def test_option_defaults_are_the_library_functions(command, option, function, parameter):
    """An option the library function also defaults is left unset (None) by the parser, so
    the call leaves it out and the function's default, its one owner, applies."""
    import importlib
    import inspect

    from textseld.commands import given

    module, name = function.rsplit(".", 1)
    default = inspect.signature(getattr(importlib.import_module(module), name)).parameters[parameter].default
    assert default is not inspect.Parameter.empty  # the library owns a default
    (action,) = [a for a in _subparsers()[command]._actions if option in a.option_strings]
    assert action.default is None, (command, option, action.default)
    args = argparse.Namespace(**{parameter: None})
    assert given(args, parameter) == {}
    assert given(argparse.Namespace(**{parameter: 3}), parameter) == {parameter: 3}

"""The workflow config as users typed it: its files and its `--config` overrides.

Snakemake merges the config files key by key, and a later occurrence of a key in
one file silently wins over an earlier one: `check_config_files` refuses a file
that holds a key twice, naming the file and both lines.

`snakemake --config KEY=VALUE` accepts only a top-level KEY and parses VALUE
with YAML's base loader, which keeps every value inside a mapping or list a
string: `--config 'train={finetune: {lr_new: 1.0e-3}}'` would set lr_new to the
string "1.0e-3", and a VALUE that is not YAML at all becomes one string. `typed_overrides`
reads each VALUE as a config file would (YAML, typed), so an override means what the
same text means in a config file, and a YAML syntax error is reported with its key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, cast

import yaml


class ConfigSourceError(ValueError):
    """A config file or `--config` override that cannot be read as meant; the message names
    the file and line, or the key."""


class _DuplicateKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping."""

    source = ""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: SafeLoader reports it below
                    continue
                line = key_node.start_mark.line + 1
                if first is not None:
                    raise ConfigSourceError(
                        f"{self.source}:{line}: key {key!r} is given twice in one mapping (first on line "
                        f"{first}); only the last value would count: keep one"
                    )
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def check_config_file(path: str | os.PathLike) -> None:
    """Raise ConfigSourceError if the YAML (or JSON) config file `path` gives a key twice in one
    mapping, or cannot be parsed (naming the file and line)."""

    class Loader(_DuplicateKeyLoader):
        source = str(path)

    try:
        with open(path, encoding="utf-8") as f:
            yaml.load(f, Loader=Loader)  # a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigSourceError(f"{where}: not valid YAML: {exc.problem or exc}") from None
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigSourceError(f"{path}: cannot read the config file: {exc}") from None


def check_config_files(paths: Iterable[str | os.PathLike]) -> None:
    """check_config_file for every file the workflow loaded (Snakemake's workflow.configfiles)."""
    for path in paths:
        check_config_file(path)


def _matches(loose: Any, typed: Any) -> bool:
    """Whether `typed` is `loose` with its string leaves typed: the same mappings and lists,
    non-string leaves equal. (Snakemake's parse of a value typed on the command line has
    string leaves; a value it was handed by its API is typed already and left alone.)"""
    if isinstance(loose, Mapping):
        return (
            isinstance(typed, Mapping) and set(typed) == set(loose) and all(_matches(loose[k], typed[k]) for k in loose)
        )
    if isinstance(loose, list):
        return isinstance(typed, list) and len(typed) == len(loose) and all(map(_matches, loose, typed))
    if isinstance(loose, str):
        return not isinstance(typed, (Mapping, list))
    return loose == typed and type(loose) is type(typed)


def typed_overrides(entries: Iterable[str] | None, parsed: Mapping[str, Any]) -> dict[str, Any]:
    """The `--config KEY=VALUE` entries with each VALUE read as YAML, as in a config file.

    entries: the command line's entries (Snakemake's config_settings.config_args);
    parsed: Snakemake's own parse of them (config_settings.config). Returns {KEY: typed VALUE}
    for the keys whose typed value differs from Snakemake's only in its string leaves; an
    empty VALUE is null. Raises ConfigSourceError naming the key when VALUE is not valid YAML."""
    out: dict[str, Any] = {}
    for entry in entries or ():
        key, sep, text = entry.partition("=")
        if not sep or key not in parsed:
            continue  # not an entry Snakemake took (it reports those itself)
        if text == "":
            out[key] = None
            continue
        try:
            value = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            where = f" at column {mark.column + 1}" if mark is not None and mark.line == 0 else ""
            if mark is not None and mark.line > 0:
                where = f" at line {mark.line + 1}, column {mark.column + 1}"
            raise ConfigSourceError(
                f"--config {key}={text}: the value is not valid YAML ({exc.problem}{where}); "
                f"write it as in a config file, e.g. --config '{key}={{section: {{key: value}}}}'"
            ) from None
        except yaml.YAMLError as exc:
            raise ConfigSourceError(f"--config {key}={text}: the value is not valid YAML ({exc})") from None
        if _matches(parsed[key], value):
            out[key] = value
    return out


def apply_overrides(config: MutableMapping[str, Any], overrides: Mapping[str, Any]) -> None:
    """Merge `overrides` into `config` in place, mapping by mapping, as Snakemake merges
    `--config` (so the keys an override leaves out keep their values; textseld.recipes.merge)."""
    from textseld.recipes import merge

    merge(cast(dict, config), overrides)

"""The README's benchmark tables are replaced only between their markers, by name."""

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "update_readme", Path(__file__).resolve().parents[1] / "benchmarks" / "update_readme.py"
)
update_readme = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(update_readme)


def test_replaces_named_block_only():
    readme = "a\n<!-- bench:x -->\nold\n<!-- /bench:x -->\nb\n<!-- bench:y -->\nkeep\n<!-- /bench:y -->\n"
    new = update_readme.blocks("noise\n<!-- bench:x -->\n| new |\n<!-- /bench:x -->\nmore")
    out = update_readme.replace_blocks(readme, new)
    assert "| new |" in out and "old" not in out and "keep" in out and out.startswith("a\n") and "noise" not in out


def test_missing_marker_is_an_error():
    with pytest.raises(ValueError, match="bench:z"):
        update_readme.replace_blocks("<!-- bench:x -->\n<!-- /bench:x -->", {"z": "<!-- bench:z -->\n<!-- /bench:z -->"})


def test_benchmarks_page_has_markers_for_every_benchmark():
    text = update_readme.PAGE.read_text()
    assert update_readme.PAGE.name == "benchmarks.md"
    names = {"surface", "train", "hessian", "gpu", "cli", "scaling", "scaling-gpu", "reproduce", "threads"}
    assert names <= set(update_readme.blocks(text))


def test_blocks_of_one_name_from_several_runs_are_concatenated():
    a = update_readme.blocks("<!-- bench:x -->\nrun 1\n<!-- /bench:x -->")["x"]
    b = update_readme.blocks("<!-- bench:x -->\nrun 2\n<!-- /bench:x -->")["x"]
    both = update_readme.concatenate(a, b)
    assert both == "<!-- bench:x -->\nrun 1\n\nrun 2\n<!-- /bench:x -->"
    assert update_readme.blocks(both)["x"] == both

"""python -m lsx.claims.compare: which verdicts moved between two reproduction reports."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from lsx.claims.compare import _shift, compare, main, to_markdown

ROOT = Path(__file__).resolve().parents[1]


def _claim(cid: str, verdict: str, disc: tuple, repl: tuple) -> dict:
    def one(v):
        value, lo, hi, verdict_ = v
        return {"verdict": verdict_, "estimate": {"value": value, "lo": lo, "hi": hi, "n": 6}}

    return {"id": cid, "verdict": verdict, "sets": {"discovery": one(disc), "replication": one(repl)}}


def _report(threads: int = 1) -> dict:
    return {
        "code_version": "abc123",
        "command": f"python -m lsx.reproduce threads={threads}",
        "environment": {"torch": "2.13.0+cpu", "torch_threads": threads, "jobs": 2, "cpu": "x"},
        "presets": [
            {
                "preset": "toy",
                "seeds": {"discovery": [0, 1], "replication": [2, 3]},
                "claims": [
                    _claim("steady", "reproduced", (1.0, 0.5, 1.5, "reproduced"), (1.1, 0.6, 1.6, "reproduced")),
                    _claim("fragile", "reproduced", (0.2, 0.1, 0.3, "reproduced"), (0.25, 0.1, 0.4, "reproduced")),
                ],
            }
        ],
    }


def test_a_report_against_itself_moves_nothing():
    a = _report()
    result = compare(a, copy.deepcopy(a))
    assert (result["headline_moved"], result["set_moved"], result["differences"]) == (0, 0, [])
    text = to_markdown(result, "a", "b")
    assert "0 headline verdict(s) moved" in text and "No verdict moved." in text and "same code" in text
    assert "Largest estimate shift over every claim and set: 0.00" in text


def test_moved_verdicts_estimates_and_provenance_are_listed():
    a, b = _report(1), _report(2)
    fragile = b["presets"][0]["claims"][1]
    fragile["verdict"] = "inconclusive"
    fragile["sets"]["replication"] = {"verdict": "inconclusive", "estimate": {"value": 0.45, "lo": -0.1, "hi": 0.9}}
    b["presets"][0]["claims"].append(_claim("new", "reproduced", (1, 0, 2, "reproduced"), (1, 0, 2, "reproduced")))
    result = compare(a, b)
    assert result["headline_moved"] == 1 and result["set_moved"] == 1 and result["only_b"] == [("toy", "new")]
    (moved,) = [r for r in result["rows"] if r["headline_moved"]]
    assert moved["claim"] == "fragile" and moved["replication"]["shift"] == pytest.approx(0.2 / 0.3)
    assert ("torch threads per job", 1, 2) in result["differences"]
    text = to_markdown(result, "one", "two")
    assert "| toy | fragile | **reproduced → inconclusive** |" in text
    assert "0.25 → 0.45 (0.67)" in text and "steady" not in text  # only moved claims by default
    assert "Claims only in B: toy/new" in text and "torch threads per job: A 1, B 2" in text
    assert "| toy | steady |" in to_markdown(result, "one", "two", show_all=True)
    point = {"value": 1.0, "lo": 1.0, "hi": 1.0}  # six units of rho = 1: A's interval is a point
    assert _shift(point, {"value": 0.9, "lo": 0.8, "hi": 1.0}) == pytest.approx(0.5)  # in B's width
    assert _shift(point, point) == 0.0 and _shift(point, {"value": 0.9, "lo": 0.9, "hi": 0.9}) == math.inf


def test_a_preset_one_report_did_not_run_is_named_once():
    a, b = _report(), _report()
    other = copy.deepcopy(a["presets"][0]) | {"preset": "other", "job_torch_threads": {"1": 2}}
    a["presets"].append(other)
    result = compare(a, b)
    assert result["only_a"] == [("other", "fragile"), ("other", "steady")]
    text = to_markdown(result, "a", "b")
    assert "Presets only in A: other" in text and "Claims only in A" not in text
    assert "of other" not in text  # its seeds and threads are not differences: B did not run it


def test_command_line_strict_exit_and_bad_input(tmp_path, capsys):
    a, b = _report(1), _report(2)
    b["presets"][0]["claims"][0]["verdict"] = "not reproduced"
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "report.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    out = tmp_path / "diff.md"
    assert main([str(tmp_path / "a"), str(tmp_path / "b.json"), "--out", str(out)]) == 0
    assert main([str(tmp_path / "a"), str(tmp_path / "b.json"), "--strict"]) == 1
    assert "**reproduced → not reproduced**" in out.read_text()
    assert main([str(tmp_path / "a"), str(tmp_path / "b.json"), "--names", "one thread", "two", "--out", str(out)]) == 0
    assert out.read_text().startswith("# Verdicts: one thread (A) against two (B)")
    capsys.readouterr()
    assert main([str(tmp_path / "nope"), str(tmp_path / "b.json")]) == 2
    assert "nope: no report.json" in capsys.readouterr().err
    (tmp_path / "x.json").write_text("[1, 2]")
    assert main([str(tmp_path / "x.json"), str(tmp_path / "b.json")]) == 2
    assert "not an lsx.reproduce report" in capsys.readouterr().err


def test_the_published_report_compares_with_itself():
    published = ROOT / "docs" / "reproduce"
    assert main([str(published), str(published / "report.json"), "--strict"]) == 0


def test_a_check_for_the_readme_says_per_claim_whether_its_headline_held(tmp_path, capsys):
    from lsx.claims import readme

    a, b = _report(1), _report(2)
    a["generated_at"] = "2026-12-06T00:00:00+0000"
    b["presets"][0]["claims"][1]["verdict"] = "inconclusive"  # fragile moves at 2 threads
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    docs = tmp_path / "docs"
    check = docs / "checks" / "threads2.json"
    check.parent.mkdir(parents=True)
    assert main([str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json", str(check), "--label", "2 threads"]) == 0
    doc = json.loads(check.read_text())
    assert doc["label"] == "2 threads" and doc["a"]["generated_at"] == a["generated_at"] and doc["headline_moved"] == 1
    checks, stale = readme.load_checks(docs, a)
    assert stale == [] and [c["label"] for c in checks] == ["2 threads"]
    (ch,) = checks
    assert readme.check_status(ch, "toy", "steady") == "holds"
    assert readme.check_status(ch, "toy", "fragile") == "**moved → inconclusive**"
    assert readme.check_status(ch, "toy", "absent") == "not rerun"
    assert readme.earned_line(a, [ch]) == ["Paper claims: 1 reproduced; not earned (moved under a check): 1 reproduced."]
    partial = dict(ch, by_claim={k: v for k, v in ch["by_claim"].items() if k[1] == "steady"})
    assert readme.earned_line(a, [ch, partial]) == [  # moved under one check outranks not rerun by another
        "Paper claims: 1 reproduced; not earned (moved under a check): 1 reproduced."
    ]
    held_only = dict(partial, by_claim={k: dict(v, headline_moved=False) for k, v in partial["by_claim"].items()})
    assert readme.earned_line(a, [held_only]) == [
        "Paper claims: 1 reproduced; not yet checked (a check did not rerun them): 1 reproduced."
    ]
    assert readme.earned_line(a, []) == []
    header = readme.checks_header(checks, stale, 3)
    lead = "Checks: each reruns claims under one change that should not matter. A verdict that moves under a check is not earned."
    assert header == [
        lead,
        "",
        "- `2 threads` (checks/threads2.json): "
        + str(tmp_path / "b.json")
        + " reran 2 of these 3 claims: 1 headline verdicts held, 1 moved; the others were not rerun.",
    ]
    (every,) = readme.checks_header(checks, stale, 2)[2:]  # a check that reran every claim has no "others"
    assert every.endswith("reran 2 of these 2 claims: 1 headline verdicts held, 1 moved.")
    newer = dict(a, generated_at="2026-12-07T00:00:00+0000")  # a new published report: the check is of the old one
    assert readme.load_checks(docs, newer) == ([], ["threads2.json"])
    assert readme.checks_header([], ["threads2.json"], 3) == [
        lead,
        "",
        "- checks/threads2.json compares an earlier report and is not shown: rerun it.",
    ]
    assert readme.checks_header([], [], 3) == []
    md = tmp_path / "dropped.md"
    assert (
        main([str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--drop", "toy", "--json", str(check), "--out", str(md)]) == 0
    )
    assert "Left out of B (--drop): toy" in md.read_text()
    assert json.loads(check.read_text())["rows"] == [] and json.loads(check.read_text())["dropped"] == ["toy"]
    assert readme.check_status(readme.load_checks(docs, a)[0][0], "toy", "steady") == "left out"
    why = "its job runs at 1 torch thread whatever threads= says"
    args = [str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--drop", "toy", "--why", why, "--json", str(check)]
    assert main([*args, "--out", str(md)]) == 0
    assert f"Left out of B (--drop): toy ({why})" in md.read_text()
    (ch,) = readme.load_checks(docs, a)[0]
    assert readme.check_status(ch, "toy", "steady") == f"left out ({why})"
    assert readme.earned_line(a, [ch]) == ["Paper claims: 2 reproduced."]  # not tested by it
    lead = readme.checks_header([ch], [], 2)[2]
    assert lead.endswith(f"reran 0 of these 2 claims: 0 headline verdicts held, 0 moved; left out: `toy` ({why}).")
    assert readme.checks_header([ch], [], 3)[2].endswith(f"left out: `toy` ({why}); the others were not rerun.")
    capsys.readouterr()
    assert main([str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--why", why]) == 2
    assert "--why says why presets are left out: name them with --drop" in capsys.readouterr().err
    assert main([str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--drop", "nope"]) == 2
    check.write_text("{}")
    with pytest.raises(ValueError, match=r"threads2.json: not a check written by `lsx.claims.compare --json`"):
        readme.load_checks(docs, a)


def test_a_check_extended_by_a_later_run_is_one_comparison(tmp_path, capsys):
    a = _report(1)
    a["generated_at"] = "2026-12-06T00:00:00+0000"
    first = copy.deepcopy(a)
    first["presets"][0]["claims"][1]["verdict"] = "inconclusive"  # fragile moves in the first run
    later = copy.deepcopy(a) | {
        "code_version": "def456",
        "generated_at": "2026-12-08",
        "command": "python -m lsx.reproduce other seeds=16-23",
        "kept_from_earlier_runs": ["third"],
    }
    later["presets"][0] |= {"preset": "other", "seeds": {"discovery": [16, 17], "replication": [18, 19]}}
    a["presets"].append(copy.deepcopy(later["presets"][0]) | {"seeds": {"discovery": [0, 1], "replication": [2, 3]}})
    first["presets"][0]["seeds"] = {"discovery": [12, 13], "replication": [14, 15]}
    for name, doc in (("a", a), ("first", first), ("later", later)):
        (tmp_path / f"{name}.json").write_text(json.dumps(doc))
    check, md = tmp_path / "check.json", tmp_path / "check.md"
    assert main([str(tmp_path / "a.json"), str(tmp_path / "first.json"), "--json", str(check)]) == 0
    assert json.loads(check.read_text())["only_a"] == [["other", "fragile"], ["other", "steady"]]
    args = [str(tmp_path / "a.json"), str(tmp_path / "later.json"), "--extend", str(check)]
    assert main([*args, "--json", str(check), "--out", str(md), "--all"]) == 0
    doc = json.loads(check.read_text())
    assert [(r["preset"], r["claim"]) for r in doc["rows"]] == [
        ("other", "fragile"),
        ("other", "steady"),
        ("toy", "fragile"),
        ("toy", "steady"),
    ]
    assert doc["only_a"] == [] and doc["headline_moved"] == 1 and doc["set_moved"] == 0
    assert [r["code_version"] for r in doc["b_runs"]] == ["abc123", "def456"]
    assert [
        "seeds of toy",
        {"discovery": [0, 1], "replication": [2, 3]},
        {"discovery": [12, 13], "replication": [14, 15]},
    ] in doc["differences"]
    assert ["code", "abc123", "def456"] in doc["differences"]
    text = md.read_text()
    assert "4 claims in both reports: 1 headline verdict(s) moved" in text and "B is 2 reports" in text
    assert "- code def456, 2026-12-08: `python -m lsx.reproduce other seeds=16-23` (its last run; third kept from" in text
    capsys.readouterr()
    assert main([*args, "--json", str(tmp_path / "again.json")]) == 2  # its claims are in the check already
    assert "--extend: the check already holds 2 of B's claims (other/fragile, other/steady)" in capsys.readouterr().err
    both = tmp_path / "both.json"  # a rerun of toy and other: toy left out, as the check holds it
    both.write_text(json.dumps(later | {"presets": [*first["presets"], later["presets"][0]]}))
    first_only = tmp_path / "first_only.json"
    assert main([str(tmp_path / "a.json"), str(tmp_path / "first.json"), "--json", str(first_only)]) == 0
    assert main([str(tmp_path / "a.json"), str(both), "--extend", str(first_only), "--drop", "toy", "--out", str(md)]) == 0
    assert "Left out of B" not in md.read_text() and "4 claims in both reports" in md.read_text()
    other_a = tmp_path / "other_a.json"
    other_a.write_text(json.dumps(a | {"generated_at": "2026-12-07T00:00:00+0000"}))
    assert main([str(other_a), str(tmp_path / "later.json"), "--extend", str(check)]) == 2
    assert "--extend: the check compares the report of 2026-12-06T00:00:00+0000 (code abc123), not A" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{}")
    assert main([*args[:2], "--extend", str(tmp_path / "bad.json")]) == 2
    assert "bad.json: not a check written by `lsx.claims.compare --json`" in capsys.readouterr().err


def test_the_training_cell_says_when_a_claim_waives_a_mismatch():
    from lsx.claims.readme import _training_cell

    flagged = {"sets": {"discovery": {"train_loss_flag": True}, "replication": {"matching": {"flag": True}}}}
    assert _training_cell(flagged) == "unmatched (discovery, replication)"  # verdict inconclusive: nothing waived
    assert _training_cell(flagged | {"matching": {"waive": "the mismatch is what the paper varies"}}) == (
        "unmatched (discovery, replication); waived by the claim"
    )
    per_set = {"sets": {"discovery": {"matching": {"flag": True, "waived": True}}}}
    assert _training_cell(per_set) == "unmatched (discovery); waived by the claim"
    assert _training_cell({"sets": {"discovery": {"matching": {"flag": False}}}}) == "matched"

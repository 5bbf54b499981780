"""Questionnaires load, and a broken one is refused with the file, the question and the fault."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flows.model import QuestionnaireError, load_dir, parse

GOOD = {
    "spec_version": 1, "id": "t", "version": 1, "title": "T", "age": {"min": 6, "max": 11},
    "questions": [
        {"id": "intro", "type": "info", "text": "Hej"},
        {"id": "mood", "type": "scale", "domain": "health", "text": "Hur mår du?",
         "scale": {"min": 1, "max": 5, "labels": {1: "Dåligt", 5: "Bra"}},
         "branches": [{"when": {"at_most": 2}, "next": "why"}]},
        {"id": "why", "type": "free_text", "followup": True, "text": "Vad är svårt?"},
        {"id": "safe", "type": "yes_no", "domain": "safety", "text": "Trygg?",
         "safeguarding": [{"when": {"equals": "no"}, "level": "urgent", "topic": "unsafe"}]},
        {"id": "end_info", "type": "info", "text": "Tack"},
    ],
}


def broken(change) -> str:
    data = copy.deepcopy(GOOD)
    change(data)
    with pytest.raises(QuestionnaireError) as e:
        parse(data, source="t.yaml")
    return str(e.value)


def test_the_good_example_loads_and_routes():
    qn = parse(GOOD, source="t.yaml")
    mood = qn.question("mood")
    assert qn.next_after(mood, 2) == "why"
    assert qn.next_after(mood, 4) == "safe"  # the follow-up is passed over
    assert qn.next_after(qn.question("why"), None) == "safe"
    assert qn.next_after(mood, None) == "safe"  # skipped: the default way


def test_shipped_questionnaires_load_and_cover_what_the_issue_asks():
    found = load_dir()
    assert {"followup-6-11", "followup-12-18", "session-feedback"} <= set(found)
    for qid in ("followup-6-11", "followup-12-18"):
        qn = found[qid]
        domains = {q.domain for q in qn.main_questions}
        assert {"home", "school", "friends", "health", "safety", "caseworker", "help"} <= domains
        assert qn.first.type == "info" and qn.questions[-1].type == "info"
        assert any(q.safeguarding for q in qn.questions)
    assert 10 <= len(found["followup-6-11"].main_questions) <= 15
    assert len(found["followup-12-18"].main_questions) > len(found["followup-6-11"].main_questions)
    assert any(q.scale and q.scale.max == 10 for q in found["followup-12-18"].questions)
    for q in found["followup-6-11"].questions:
        if q.scale:
            assert (q.scale.min, q.scale.max) == (1, 5) and len(q.scale.labels) == 5
    fb = found["session-feedback"]
    assert [q.type for q in fb.main_questions] == ["scale"] * 4
    for qn in found.values():
        closing = qn.questions[-1].text
        assert "112" in closing and "116 111" in closing, qn.id


@pytest.mark.parametrize("change, expected", [
    (lambda d: d["questions"].append({"id": "mood", "type": "info", "text": "x"}),
     "t.yaml: question 'mood': the id is used twice"),
    (lambda d: d["questions"][1]["branches"][0].update(next="nowhere"),
     "t.yaml: question 'mood': leads to 'nowhere', which is not a question in this file"),
    (lambda d: d["questions"][3].update(type="slider"),
     "t.yaml: question 'safe': unknown type 'slider'"),
    (lambda d: d["questions"][1].pop("branches"),
     "t.yaml: question 'why': cannot be reached: a follow-up needs a branch that leads to it"),
    (lambda d: d["questions"][2].update(next="mood"),
     "t.yaml: question 'mood': is part of a loop: mood -> why -> mood"),
    (lambda d: d["questions"][1]["branches"][0].update(when={"at_most": 7}),
     "t.yaml: question 'mood': branch 1: at_most: 7 is outside the scale 1-5"),
    (lambda d: d["questions"][3]["safeguarding"][0].update(when={"equals": True}),
     "write equals: \"yes\" or \"no\" in quotes"),
    (lambda d: d["questions"][1]["scale"]["labels"].pop(5),
     "t.yaml: question 'mood': the scale ends need words"),
    (lambda d: d.update(spec_version=9), "t.yaml: spec_version 9 is not one this tala knows"),
    (lambda d: d["questions"][1].update(domain="weather"),
     "t.yaml: question 'mood': unknown domain 'weather'"),
    (lambda d: d["questions"][1].update(next="end", branches=[]),
     "t.yaml: question 'why': cannot be reached"),
])
def test_a_broken_questionnaire_is_refused_precisely(change, expected):
    assert expected in broken(change)


def _tala(*args: str, cwd: Path | None = None, env: dict | None = None):
    return subprocess.run([sys.executable, "-m", "admin_cli.main", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


def test_flows_check_passes_on_the_shipped_questionnaires():
    result = _tala("flows", "check")
    assert result.returncode == 0, result.stderr
    for qid in ("followup-6-11", "followup-12-18", "session-feedback"):
        assert qid in result.stdout


def test_flows_check_fails_on_a_broken_file_and_says_where(tmp_path):
    data = copy.deepcopy(GOOD)
    data["questions"][1]["branches"][0]["next"] = "nowhere"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    result = _tala("flows", "check", str(path))
    assert result.returncode == 1
    assert "broken.yaml: question 'mood': leads to 'nowhere'" in result.stderr

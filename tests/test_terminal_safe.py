"""A child's words can never act on a caseworker's terminal (issue 16): escape sequences (clear
screen, window title, OSC 52 clipboard, OSC 8 links), bidi overrides and Rich markup in an
answer reach every staff-facing output only as visible, inert text."""

from __future__ import annotations

import csv
import io
import json

from tests.test_staff import _cli

EVIL = ("Hej\x1b[2J\x1b]0;pwned\x07\x1b]52;c;cm0gLXJmIH4=\x07\x1b]8;;http://x.example\x1b\\"
        "klicka\x1b]8;;\x1b\\ \u202eolleh\u202c \u2066x\u2069 [red]röd[/red] \x9b31m slut")
RAW = ["\x1b", "\x07", "\x9b", "\u202e", "\u202c", "\u2066", "\u2069"]


def _child_with_evil_words(app) -> None:
    sid = app.service.invite("E-1", 14, unit="Nord", actor="anna",
                             questionnaire_id="followup-12-18").session_id
    app.service.open(sid)
    state = app.service.state(sid)
    qn = app.questionnaires[state.questionnaire_id]
    # Answer until a free-text question, then write the evil text there.
    for _ in range(40):
        q = qn.question(app.service.state(sid).current)
        if q.type == "free_text":
            app.service.handle(sid, EVIL)
            break
        app.service.handle(sid, "hoppa över")
    app.service.handle(sid, "sluta")
    app.service.handle(sid, "ja")
    app.service.handle(sid, "Ring mig \x1b[31mNU\x1b[0m \u202e!")  # after the end: an alert


def test_no_staff_output_carries_a_raw_control_character(app, monkeypatch):
    _child_with_evil_words(app)
    outputs = {}
    for name, args in {"summary text": ["summary", "E-1"],
                       "summary json": ["summary", "E-1", "--format", "json"],
                       "alerts": ["alerts"], "alerts json": ["alerts", "--json"],
                       "export csv": ["export", "--format", "csv"],
                       "export json": ["export", "--format", "json"],
                       "audit": ["audit"]}.items():
        result = _cli(app, monkeypatch, "anna", *args)
        assert result.exit_code == 0, (name, result.output)
        outputs[name] = result.output
    for name, text in outputs.items():
        for raw in RAW:
            assert raw not in text, (name, repr(raw))
    # Shown, visibly and literally: the caseworker sees that something odd was written.
    summary = outputs["summary text"]
    assert "\\x1b[2J" in summary and "<U+202E>" in summary and "[red]röd[/red]" in summary
    # JSON keeps the child's words exactly (as \u escapes).
    data = json.loads(outputs["summary json"])
    texts = [a.get("text") for s in data["sessions"] for a in s["answers"]]
    assert EVIL in texts
    rows = list(csv.reader(io.StringIO(outputs["export csv"].lstrip("\ufeff"))))
    assert any("\\x1b" in cell for row in rows for cell in row)

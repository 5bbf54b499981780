"""The catalogs as translators and CI see them: an unchanged source gives byte-identical
catalogs (both domains), `tala locales check` holds every language to its glossary, numbers and
placeholders, GNU msgfmt accepts every catalog, and what a child reads first is short and right.
Everything that writes works on a temporary copy of locales/, never on the real files."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

from admin_cli.locales import CHILD, LOCALES, STAFF, update, update_all
from admin_cli.locales_check import GlossaryError, check, load_glossary, report
from bot.channels.sms import render_sms
from bot.channels.sms_text import segments
from bot.render import render
from flows import engine
from flows import messages as M
from flows.engine import Say

SENDER = "Socialtjänsten i Nacka"  # a real sender name is longer than the default


def _copy_locales(tmp_path: Path) -> Path:
    copy = tmp_path / "locales"
    shutil.copytree(LOCALES, copy, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    return copy


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "admin_cli.main", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


# --------------------------------------------------------------------------- stable extraction


def test_locales_update_on_unchanged_sources_leaves_every_child_catalog_byte_identical(
        tmp_path):
    copy = _copy_locales(tmp_path)
    touched = update(CHILD.pot(copy), copy, CHILD)
    assert len(touched) == len(CHILD.catalogs()) >= 7
    for path in [CHILD.pot()] + CHILD.catalogs():
        rel = path.relative_to(LOCALES)
        assert (copy / rel).read_bytes() == path.read_bytes(), \
            f"{rel} changes on an unchanged source: run tala locales update and commit it"


def test_translator_comments_are_whole_sentences_not_cut_at_each_source_line(tmp_path):
    copy = _copy_locales(tmp_path)
    update(CHILD.pot(copy), copy, CHILD)
    with CHILD.pot(copy).open("rb") as fh:
        msg = read_po(fh)[M.SAFETY_ON_CALL]
    comment = " ".join(msg.auto_comments)
    assert "when the unit's on-call staff (socialjouren) are told at once" in comment
    assert all(len(line) > 20 for line in msg.auto_comments[:-1])  # no stub lines


def test_the_staff_domain_is_extracted_and_merged_on_a_copy_keeping_every_translation(
        tmp_path):
    copy = _copy_locales(tmp_path)
    real = {p: p.read_bytes() for p in [STAFF.pot(), *STAFF.catalogs()] if p.exists()}
    with (LOCALES / "en" / "LC_MESSAGES" / "tala-staff.po").open("rb") as fh:
        before = {m.id: m.string for m in read_po(fh) if m.id and m.string}

    [po] = update(STAFF.pot(copy), copy, STAFF)
    assert po == copy / "en" / "LC_MESSAGES" / "tala-staff.po"
    with STAFF.pot(copy).open("rb") as fh:
        template = {m.id for m in read_po(fh) if m.id}
    assert "uppdaterade {path}" in template  # a msgid of the staff CLI (admin_cli/main.py)
    assert not any(m.startswith("Hur har du det") for m in map(str, template))  # no child text
    with po.open("rb") as fh:
        after = {m.id: m.string for m in read_po(fh) if m.id}
    kept = {k: v for k, v in before.items() if k in template}
    assert kept and all(after[k] == v for k, v in kept.items())

    first = po.read_bytes()
    update(STAFF.pot(copy), copy, STAFF)
    assert po.read_bytes() == first  # stable for the staff domain too
    assert {p: p.read_bytes() for p in real} == real  # the real files were never touched


def test_every_staff_text_in_the_code_is_in_the_committed_catalog_in_english(tmp_path):
    # A `_("...")` added without `tala locales update`, or left without English, fails here.
    copy = _copy_locales(tmp_path)
    [po] = update(STAFF.pot(copy), copy, STAFF)
    rel = po.relative_to(copy)
    assert po.read_bytes() == (LOCALES / rel).read_bytes(), \
        f"{rel} is behind the code: run tala locales update, translate, and commit it"
    with po.open("rb") as fh:
        entries = [m for m in read_po(fh) if m.id]
    strings = {m.id: m.string for m in entries}
    assert len(entries) > 400
    assert [m.id for m in entries if m.fuzzy] == []
    assert [m.id for m in entries
            if not (m.string if isinstance(m.string, str) else all(m.string))] == []
    assert strings["från början"] == "from the start"  # a msgid beside an f-string is found
    with STAFF.pot(copy).open("rb") as fh:  # the poster's child-facing texts stay in `tala`
        assert "Vad tycker du? Berätta för oss!" not in {m.id for m in read_po(fh)}


def test_update_all_does_both_domains(tmp_path):
    copy = _copy_locales(tmp_path)
    touched = update_all(copy)
    assert copy / "en" / "LC_MESSAGES" / "tala.po" in touched
    assert copy / "en" / "LC_MESSAGES" / "tala-staff.po" in touched
    assert (copy / "tala.pot").exists() and (copy / "tala-staff.pot").exists()


# --------------------------------------------------------------------------- glossary check


def _catalog(path: Path, lang: str, entries: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cat = Catalog(locale=lang)
    for msgid, msgstr in entries.items():
        cat.add(msgid, msgstr)
    with path.open("wb") as fh:
        write_po(fh, cat)


def test_locales_check_passes_on_the_shipped_catalogs():
    assert check() == []
    result = _cli("locales", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Alla översättningar följer" in result.stdout


def test_every_language_has_a_glossary_with_the_shared_terms():
    for po in CHILD.catalogs():
        glossary = load_glossary(po.parent.parent / "glossary.yaml")
        for term in ("socialtjänsten", "BRIS", "Självmordslinjen", "ja", "nej", "hoppa över",
                     "paus", "stopp", "STOP", "Jättebra", "Jättedåligt", "Mittemellan"):
            assert term in glossary, (po, term)


def test_locales_check_names_language_text_and_term_of_each_broken_translation(tmp_path):
    d = tmp_path / "locales"
    (d / "fi").mkdir(parents=True)
    (d / "fi" / "glossary.yaml").write_text(
        'terms:\n  "socialtjänsten": "sosiaalipalvelu"\n  "hoppa över": ["ohit"]\n',
        encoding="utf-8")
    _catalog(d / "fi" / "LC_MESSAGES" / "tala.po", "fi", {
        "Den vuxna på socialtjänsten läser det.": "Aikuinen sosiaalitoimistossa lukee sen.",
        "Du kan hoppa över frågor.": "Voit ohittaa kysymyksiä.",  # a stem: fine
        "Ring BRIS på 116 111.": "Soita BRIS, 116111.",
        "Hej! {sender} vill veta.": "Hei! {lahettaja} haluaa tietää.",
        "Svara ja.": "",  # untranslated: Swedish is shown, nothing to check
    })
    result = _cli("locales", "check", "--dir", str(d))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith('fi: "Den vuxna på socialtjänsten läser det."')
               and '"socialtjänsten"' in line and '"sosiaalipalvelu"' in line for line in lines)
    assert any('"Ring BRIS på 116 111."' in line and "116 111" in line for line in lines)
    assert any("{sender} saknas" in line and "{lahettaja}" in line for line in lines)
    assert not any("hoppa över" in line for line in lines)
    assert "3 fel i översättningarna." in lines[-1]
    assert "Traceback" not in result.stderr

    english = _cli("locales", "check", "--dir", str(d), env={"TALA_LANG": "en"})
    assert 'the glossary term "socialtjänsten" is "sosiaalipalvelu" in fi' in english.stdout
    assert "3 problems in the translations." in english.stdout


def test_a_language_without_a_glossary_and_a_broken_glossary_are_refused_clearly(tmp_path):
    d = tmp_path / "locales"
    _catalog(d / "so" / "LC_MESSAGES" / "tala.po", "so", {"Hej!": "Salaan!"})
    code, lines = report(d)
    assert code == 1 and lines[0].startswith("so: ordlista saknas:")

    (d / "so" / "glossary.yaml").write_text("terms: [BRIS]\n", encoding="utf-8")
    with pytest.raises(GlossaryError, match="terms:"):
        check(d)
    result = _cli("locales", "check", "--dir", str(d))
    assert result.returncode == 1 and "glossary.yaml" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_glossary_term_in_another_script_may_carry_a_prefix():
    """Tigrinya writes "to BRIS" as one word, "ንBRIS"; a Latin "xBRIS" is another word."""
    from admin_cli.locales_check import check_entry

    gl = {"BRIS": ("BRIS",)}
    assert check_entry("ti", "Ring BRIS.", "ንBRIS ደውሉ።", gl) == []
    assert check_entry("en", "Ring BRIS.", "Call xBRIS.", gl) != []


# --------------------------------------------------------------------------- GNU msgfmt


@pytest.mark.skipif(shutil.which("msgfmt") is None,
                    reason="GNU msgfmt is missing: install the Debian package gettext")
def test_gnu_msgfmt_accepts_every_child_catalog_without_a_warning():
    for po in CHILD.catalogs():
        result = subprocess.run(["msgfmt", "-c", "-o", os.devnull, str(po)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and not result.stderr, (po, result.stderr)


# --------------------------------------------------------------------------- what a child reads


@pytest.mark.parametrize("sender", ["Socialtjänsten", SENDER])
def test_the_invitation_fits_in_two_sms_segments_in_every_language(runtime, sender):
    for lang in runtime.catalogs.languages:
        text = runtime.catalogs.gettext(lang, M.INVITE_SMS).format(sender=sender)
        parts = render_sms([Say(text)])
        count = sum(segments(p).count for p in parts)
        assert count <= 2, (lang, count, text)
        assert sender in text and "STOP" in text, lang  # who asks, and how to stop


def test_no_question_says_the_same_sentence_twice(runtime, questionnaires):
    """A free-text question with "Skriv med egna ord." in its text got the hint's "Skriv med
    egna ord." right after it."""
    sentence = re.compile(r"[^.!?\n]+[.!?]")
    for qn in questionnaires.values():
        for q in qn.questions:
            for lang in ("sv", "en"):
                text = "\n".join(render(s) for s in engine.preview(runtime, qn, lang, q.id))
                said = [s.strip() for s in sentence.findall(text)]
                repeated = {s for s in said if said.count(s) > 1}
                assert not repeated, (qn.id, q.id, lang, repeated)


def test_the_help_and_the_introductions_agree_there_are_no_right_answers(questionnaires):
    assert "inga rätta eller fel svar" in M.HELP
    intros = [q.text for qn in questionnaires.values() for q in qn.questions
              if q.id == "intro" and "fel svar" in q.text]
    assert intros and all("inga rätta eller fel svar" in t for t in intros)


def test_wrong_translations_once_shipped_do_not_come_back(catalogs):
    """The errors a reader found (issue 18); each is a regression guard."""
    gone = {
        "en": ["This is not about me", "Do you want to tell us more about your friends?"],
        "uk": ["Це не про мене", "з ким ми зустрічаємося"],
        "ar": ["شخص أنا أو كنت على علاقة معه"],
        "fa": ["دلت خیلی درد می‌گیرد"],
    }
    for po in CHILD.catalogs():
        lang = po.parent.parent.name
        with po.open("rb") as fh:
            strings = [m.string for m in read_po(fh) if m.id and isinstance(m.string, str)]
        for wrong in gone.get(lang, []):
            assert not [s for s in strings if wrong in s], (lang, wrong)
    for lang in catalogs.languages:
        if lang != "sv":
            assert catalogs.gettext(lang, "Det gäller inte mig") != "Det gäller inte mig"

"""The translation pipeline: extraction finds every child-facing string (code and YAML), the
shipped catalogs cover all of them, and a missing translation falls back to Swedish."""

from __future__ import annotations

import io
import re

import yaml
from babel.messages.pofile import read_po

from admin_cli.locales import LOCALES, extract
from flows.babel_extract import extract as extract_yaml
from flows.i18n import Catalogs, normalise
from flows.model import BUILTIN_DIR, load_dir

PLACEHOLDER = re.compile(r"\{\w+\}")


def _extracted(tmp_path) -> dict[str, object]:
    pot = extract(tmp_path / "tala.pot")
    with pot.open("rb") as fh:
        return {m.id: m for m in read_po(fh) if m.id}


def test_every_questionnaire_string_is_extracted_with_a_translator_comment(tmp_path):
    msgs = _extracted(tmp_path)
    for qn in load_dir().values():
        for q in qn.questions:
            assert q.text in msgs, (qn.id, q.id)
            assert any(qn.id in c and q.id in c for c in msgs[q.text].auto_comments)
            for o in q.options:
                assert o.text in msgs
            for label in (q.scale.labels.values() if q.scale else []):
                assert label in msgs


def test_the_shipped_catalogs_cover_every_extracted_string_with_the_same_placeholders(tmp_path):
    msgs = _extracted(tmp_path)
    assert len(msgs) > 100
    for po in LOCALES.glob("*/LC_MESSAGES/tala.po"):
        with po.open("rb") as fh:
            cat = read_po(fh)
        translated = {m.id: m for m in cat if m.id and m.string and not m.fuzzy}
        missing = sorted(set(msgs) - set(translated))
        assert not missing, f"{po}: untranslated: {missing[:5]} (run: tala locales update)"
        for msgid, m in translated.items():
            assert sorted(PLACEHOLDER.findall(msgid)) == sorted(PLACEHOLDER.findall(m.string)), \
                f"{po}: placeholders differ in {msgid!r}"


def test_a_changed_question_is_picked_up_by_extraction():
    path = next(BUILTIN_DIR.glob("followup-6-11.yaml"))
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["questions"][1]["text"] = "Hur känns det hemma i dag?"
    found = list(extract_yaml(io.BytesIO(yaml.safe_dump(data, allow_unicode=True).encode()),
                              [], [], {}))
    texts = {msg: comments for _, _, msg, comments in found}
    assert "Hur känns det hemma i dag?" in texts
    assert "home_feel" in texts["Hur känns det hemma i dag?"][0]
    assert Catalogs.load().gettext("en", "Hur känns det hemma i dag?") == \
        "Hur känns det hemma i dag?"  # untranslated: Swedish for that string only, never empty


def test_review_state_survives_a_catalog_update(tmp_path):
    import shutil

    from admin_cli.locales import update
    shutil.copytree(LOCALES / "en", tmp_path / "en")
    assert Catalogs.load(tmp_path).by_lang["en"].review_state == "draft"
    update(tmp_path / "tala.pot", tmp_path)
    cats = Catalogs.load(tmp_path)
    assert cats.by_lang["en"].review_state == "draft"
    assert cats.gettext("en", "Hur har du det?") != "Hur har du det?"  # translations kept


def test_languages_have_own_names():
    cats = Catalogs.load()
    assert cats.own_name("sv") == "svenska" and cats.own_name("en") == "English"
    assert normalise("English") in cats.names_for("en") and "engelska" in cats.names_for("en")


def test_english_word_lists_are_understood():
    cats = Catalogs.load()
    from flows import messages as M
    assert "yes" in cats.words("en", M.WORDS_YES) and "ja" in cats.words("en", M.WORDS_YES)
    assert "skip" in cats.words("en", M.WORDS_SKIP)


def test_the_committed_template_is_up_to_date(tmp_path):
    with (LOCALES / "tala.pot").open("rb") as fh:
        committed = {m.id for m in read_po(fh) if m.id}
    assert committed == set(_extracted(tmp_path)), "run: tala locales update"


def test_plural_forms_of_every_catalog_follow_babels_rules_for_the_language():
    """Compared by what the rule chooses for 0-1000, not by its spelling: Babel releases write
    the same CLDR rule differently (Ukrainian), and a changed rule (Persian in Babel 2.19)
    still shows up."""
    import gettext

    from babel.messages.catalog import Catalog
    for po in LOCALES.glob("*/LC_MESSAGES/tala.po"):
        lang = po.parent.parent.name
        with po.open("rb") as fh:
            cat = read_po(fh, locale=lang)
        babels = Catalog(locale=lang)
        assert cat.num_plurals == babels.num_plurals, lang
        ours, theirs = gettext.c2py(cat.plural_expr), gettext.c2py(babels.plural_expr)
        assert [ours(n) for n in range(1001)] == [theirs(n) for n in range(1001)], lang


def test_locales_status_counts_untranslated_and_fuzzy_and_compile_writes_working_mo(tmp_path):
    import gettext
    import shutil

    from admin_cli.locales import compile_all, status
    shutil.copytree(LOCALES / "en", tmp_path / "en")
    po = tmp_path / "en" / "LC_MESSAGES" / "tala.po"
    text = po.read_text(encoding="utf-8")
    # One translation removed, one marked fuzzy (as `pybabel update` does for a changed text).
    text = text.replace('msgstr "Answer yes or no."', 'msgstr ""', 1)
    text = text.replace('msgid "Okej, vi pausar.', '#, fuzzy\nmsgid "Okej, vi pausar.', 1)
    po.write_text(text, encoding="utf-8")
    [sv, en] = status(tmp_path)
    assert (sv.lang, sv.share, sv.review_state) == ("sv", 1.0, "source")
    assert en.total == sv.total and en.translated == en.total - 2 and en.fuzzy == 1
    assert en.review_state == "draft" and en.longest_sms > 10
    # The safeguarding phrases' own review state, per language, beside the catalog's.
    assert en.safety_phrases > 10 and en.safety_review in ("draft", "reviewed")
    assert sv.safety_phrases > 10
    [mo] = compile_all(tmp_path)
    with mo.open("rb") as fh:
        tr = gettext.GNUTranslations(fh)
    assert tr.gettext("Hur har du det?") != "Hur har du det?"
    assert tr.gettext("Svara ja eller nej.") == "Svara ja eller nej."  # untranslated: Swedish

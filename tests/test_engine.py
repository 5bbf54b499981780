"""The pure engine: literal states in, effects out, no fakes (like rasa-sdk's action tests)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flows import engine
from flows.engine import Finish, RaiseAlert, SaveAnswer, Say, Wake


def test_start_introduces_then_asks_the_first_question(talk):
    t = talk()
    assert t.state.status == "active"
    assert t.asking == "home_feel"
    assert "Du bestämmer själv" in t.texts  # answering is voluntary, said up front
    assert "hjälp" in t.texts


@pytest.mark.parametrize("reply, value", [
    ("4", 4), (" 4 ", 4), ("fyra", 4), ("Fyra!", 4), ("٤", 4), ("۴", 4),
    ("ganska bra", 4), ("GANSKA BRA", 4), ("jattebra", 5), ("Jättebra", 5), ("typ 3", 3),
])
def test_scale_answers_are_read_tolerantly(talk, reply, value):
    t = talk()
    t.say(reply)
    assert t.state.answers["home_feel"]["value"] == value
    assert t.asking == "home_adult"


@pytest.mark.parametrize("reply, value", [
    ("ja", "yes"), ("Ja", "yes"), ("JAPP", "yes"), ("j", "yes"), ("ja, det finns", "yes"),
    ("nej", "no"), ("nä", "no"), ("Nää", "no"), ("1", "yes"), ("2", "no"),
])
def test_yes_no_answers_are_read_tolerantly(talk, reply, value):
    t = talk()
    t.say("4")
    t.say(reply)
    assert t.state.answers["home_adult"]["value"] == value


def test_nonsense_gets_a_specific_reprompt_and_changes_nothing(talk):
    t = talk()
    t.say("banan")
    assert "förstod inte" in t.texts
    assert "siffra från 1 till 5" in t.texts  # says exactly what would work
    assert t.asking == "home_feel"
    assert t.state.answers == {}
    t.say("9")
    assert "från 1 till 5" in t.texts and t.state.answers == {}
    t.say("xyz")
    assert "hoppa över" in t.texts  # after a few misses: how to get out
    t.say("3")
    assert t.state.answers["home_feel"]["value"] == 3


def test_low_score_asks_the_follow_ups_and_a_good_one_does_not(talk):
    low = talk()
    low.say("2")
    assert low.asking == "home_hard"
    low.say("1 och 3")
    assert low.state.answers["home_hard"]["value"] == ["arguing", "lonely"]
    assert low.asking == "home_more"
    low.say("Det är mycket bråk")
    assert low.asking == "home_adult"

    good = talk()
    good.say("5")
    assert good.asking == "home_adult"


def test_multi_choice_by_text_and_exclusive_option(talk, runtime, questionnaires):
    qn = questionnaires["followup-6-11"]
    t = talk()
    t.state.current = "help_wanted"
    t.say("skolan eller kompisar, hur jag mår")
    assert t.state.answers["help_wanted"]["value"] == ["school_friends", "feelings"]
    t.state.current = "help_wanted"
    t.say("1, 4")
    assert "Inget just nu" in t.texts and "tillsammans" in t.texts
    assert t.state.answers["help_wanted"]["value"] == ["school_friends", "feelings"]
    assert qn.question("help_wanted").option("nothing").exclusive


def test_back_changes_the_previous_answer_and_keeps_the_old_one(talk):
    t = talk()
    t.say("4")
    t.say("tillbaka")
    assert t.asking == "home_feel"
    assert "Förut svarade du: 4 (Ganska bra)" in t.texts
    t.say("2")
    assert t.state.answers["home_feel"]["value"] == 2
    assert [a["value"] for a in t.state.superseded] == [4]  # nothing silently overwritten
    assert t.asking == "home_hard"  # the new answer decides the path


def test_back_at_the_first_question_explains(talk):
    t = talk()
    t.say("tillbaka")
    assert "första frågan" in t.texts and t.asking == "home_feel"


def test_skip_moves_on_and_never_drops_an_earlier_answer(talk):
    t = talk()
    t.say("hoppa över")
    assert t.state.answers["home_feel"]["skipped"] is True
    assert t.asking == "home_adult"
    t.say("ja")
    t.say("tillbaka")
    t.say("skippa")  # skipping an answered question keeps the answer
    assert t.state.answers["home_adult"]["value"] == "yes"
    assert "förra svar finns kvar" in t.texts


def test_an_option_called_like_a_command_is_an_answer(talk, runtime):
    from flows.model import parse
    qn = parse({"spec_version": 1, "id": "t", "version": 1, "title": "T",
                "age": {"min": 6, "max": 18}, "questions": [
                    {"id": "q", "type": "choice", "text": "Vad?", "options": [
                        {"id": "a", "text": "Vet inte"}, {"id": "b", "text": "Något"}]}]})
    from tests.conftest import Talk
    t = Talk(runtime, qn)
    t.say("vet inte")
    assert t.state.answers["q"]["value"] == "a"


def test_pause_and_come_back(talk):
    t = talk()
    t.say("4")
    t.say("paus")
    assert t.state.status == "paused"
    assert "sparat" in t.texts
    t.say("hej igen", minutes=600)
    assert t.state.status == "active"
    assert "Välkommen tillbaka" in t.texts and t.asking == "home_adult"
    assert t.state.answers["home_feel"]["value"] == 4


def test_stop_asks_first_then_stops_and_says_where_to_get_help(talk):
    t = talk()
    t.say("4")
    t.say("sluta")
    assert t.state.status == "active" and t.state.pending == "confirm_stop"
    t.say("nej")
    assert t.asking == "home_adult" and t.state.pending is None
    t.say("sluta")
    t.say("ja")
    assert t.state.status == "stopped"
    assert t.of(Finish) == [Finish("stopped")]
    assert "116 111" in t.texts and "112" in t.texts
    t.say("hallå")  # a greeting after a stop: honest, not "you answered everything"
    assert "Frågorna är slut nu" in t.texts and t.state.status == "stopped"


def test_my_answers_lists_what_was_said(talk):
    t = talk()
    t.say("4")
    t.say("ja")
    t.say("mina svar")
    assert "4 (Ganska bra)" in t.texts and "Ja" in t.texts
    assert t.asking == "school_feel"


def test_help_explains_commands_and_where_to_get_help(talk):
    t = talk()
    t.say("hjälp")
    assert "tillbaka" in t.texts and "116 111" in t.texts and "112" in t.texts
    assert t.asking == "home_feel" and t.state.answers == {}


def test_language_change_by_menu_and_by_name(talk, catalogs):
    if not catalogs.has("en"):
        pytest.skip("no English catalog")
    t = talk()
    t.say("språk")
    assert "English" in t.texts and "svenska" in t.texts
    t.say(str(catalogs.languages.index("en") + 1))
    assert t.state.lang == "en"
    assert "English" in t.texts  # "Now we are writing in English."
    t.say("4")
    assert t.state.answers["home_feel"]["value"] == 4
    t.say("svenska")
    assert t.state.lang == "sv" and t.asking == "home_adult"


def test_safeguarding_answer_alerts_at_once_and_tells_where_to_get_help(talk):
    t = talk()
    t.state.current = "hurt_by_adult"
    t.say("ja")
    alerts = t.of(RaiseAlert)
    assert [(a.question_id, a.level, a.topic) for a in alerts] == [
        ("hurt_by_adult", "urgent", "harm_by_adult")]
    assert "112" in t.texts and "116 111" in t.texts
    # Going back and answering the same again does not alert twice.
    t.say("tillbaka")
    t.say("ja")
    assert t.of(RaiseAlert) == []


def test_disclosure_in_free_text_or_in_nonsense_is_never_unseen(talk):
    t = talk()
    t.say("pappa slår mig")  # not a scale answer, but it must reach the caseworker
    alerts = t.of(RaiseAlert)
    assert len(alerts) == 1 and alerts[0].topic == "violence_or_abuse"
    assert alerts[0].text == "pappa slår mig"
    assert "116 111" in t.texts and t.asking == "home_feel"


def test_every_step_reschedules_and_a_quiet_session_is_reminded_then_expires(talk, runtime):
    t = talk()
    t.say("4")
    wakes = t.of(Wake)
    assert wakes and wakes[0].at == t.now + runtime.policy.remind_after
    assert t.tick(timedelta(hours=1)) == [Wake(t.now - timedelta(hours=1)
                                                + runtime.policy.remind_after)]
    reminded = t.tick(runtime.policy.remind_after)
    assert any(isinstance(e, Say) and "frågor kvar" in e.text for e in reminded)
    assert t.tick(timedelta(hours=1)) and not any(isinstance(e, Say) for e in t.last)
    t.tick(runtime.policy.expire_after)
    assert t.state.status == "expired" and t.of(Finish) == [Finish("expired")]
    assert t.state.answers["home_feel"]["value"] == 4  # kept, written as partial


def test_completing_the_questionnaire_finishes_once(talk):
    t = talk("session-feedback")
    for reply in ["5", "4", "3", "5"]:
        t.say(reply)
    assert t.state.status == "completed"
    assert t.of(Finish) == [Finish("completed")]
    assert "116 111" in t.texts  # the closing text says where to get help
    assert [e.question_id for e in t.effects if isinstance(e, SaveAnswer)] == [
        "right_topics", "meeting_helped", "easy_to_reach", "recommend_friend"]


def test_state_round_trips_through_a_dict(talk):
    t = talk()
    t.say("2")
    again = engine.State.from_dict(t.state.to_dict())
    assert again == t.state


def test_commands_work_while_paused_and_while_asked_to_confirm_stop(talk):
    t = talk()
    t.say("paus")
    t.say("hjälp")
    assert t.state.status == "active"
    assert "Välkommen tillbaka" in t.texts and "tillbaka = ändra" in t.texts
    assert t.asking == "home_feel"
    t.say("sluta")
    t.say("mina svar")  # not a yes or no: the stop is off and the command is carried out
    assert t.state.pending is None and "inte svarat på något än" in t.texts
    assert t.state.status == "active" and t.asking == "home_feel"


def test_a_disclosure_before_the_start_or_after_the_end_is_never_unseen(runtime, questionnaires):
    from flows.engine import Inbound, new_state, step
    from tests.conftest import T0

    qn = questionnaires["session-feedback"]
    s, effects = step(runtime, qn, new_state("s", qn, "sv", T0), Inbound("han slog mig", T0))
    assert [a.topic for a in effects if isinstance(a, RaiseAlert)] == ["violence_or_abuse"]
    assert s.status == "active" and s.current == "right_topics"
    s.status = "completed"
    s, effects = step(runtime, qn, s, Inbound("jag vill dö", T0))
    assert [a.topic for a in effects if isinstance(a, RaiseAlert)] == ["self_harm"]
    assert any(isinstance(e, Say) and "116 111" in e.text for e in effects)


def test_right_to_left_messages_isolate_numbers_and_start_lines_right_to_left(questionnaires):
    """The exact strings an Arabic-speaking child is sent, with a catalog made for the test."""
    from flows.engine import FSI, PDI, RLM, Runtime, SafetyLexicon, prompt_for
    from flows.i18n import Catalog, Catalogs
    from bot.render import render
    from tests.conftest import Talk

    ar = Catalog("ar", {"Svara med en siffra från {low} till {high}.":
                        "اكتب رقمًا من {low} إلى {high}.",
                        "Hur har du det där du bor?": "كيف حالك حيث تسكن؟",
                        "Jättebra": "جيد جدًا"})
    rt = Runtime(Catalogs({"sv": Catalog("sv"), "ar": ar}), SafetyLexicon.load())
    t = Talk(rt, questionnaires["followup-6-11"], "ar")
    p = prompt_for(engine._Talk(rt, t.state), questionnaires["followup-6-11"].question(
        "home_feel"))
    assert p.rtl and p.hint == f"اكتب رقمًا من {FSI}1{PDI} إلى {FSI}5{PDI}."
    lines = render(Say(prompt=p)).split("\n")
    assert lines[0] == "كيف حالك حيث تسكن؟"
    assert lines[5] == f"{RLM}5. جيد جدًا"  # a numbered line: led by a right-to-left mark
    assert lines[1] == f"{RLM}1. Jättedåligt"  # untranslated: Swedish, still laid out RTL


def test_an_urgent_answer_gets_the_whole_help_text_every_time(talk):
    t = talk()
    t.say("pappa slår mig")
    assert "Den vuxna du brukar prata med" in t.texts and "112" in t.texts
    t.say("han slog mig igen")  # the same question and topic: already alerted once
    assert t.of(RaiseAlert) == []
    # ...but the child is not fobbed off with a reminder: the whole text again.
    assert "Den vuxna du brukar prata med" in t.texts and "116 111" in t.texts
    assert "90101" not in t.texts  # Självmordslinjen is for self-harm and suicidal thoughts


def test_self_harm_and_suicidal_thoughts_get_the_suicide_line_every_time(talk):
    t = talk("followup-12-18")
    t.say("jag vill dö")
    assert "Självmordslinjen på 90101" in t.texts and "116 111" in t.texts and "112" in t.texts
    t.say("jag vill inte leva längre")
    assert "Självmordslinjen på 90101" in t.texts and "Den vuxna du brukar prata med" in t.texts
    assert engine.about_suicide("suicidal_thoughts_now") and engine.about_suicide("self_harm")
    assert not engine.about_suicide("violence_or_abuse")


def test_a_repeated_concern_gets_the_short_reminder(talk):
    t = talk()
    t.say("1")  # home_feel: "Jättedåligt", a concern
    assert "Den vuxna du brukar prata med" in t.texts and "116 111" in t.texts
    t.say("tillbaka")
    t.say("1")  # the same concern again
    assert "BRIS 116 111" in t.texts and "Den vuxna du brukar prata med" not in t.texts


def test_after_the_end_a_message_is_kept_for_the_caseworker_and_the_child_told_honestly(talk):
    t = talk("session-feedback")
    for answer in ["5", "5", "5", "5"]:
        t.say(answer)
    assert t.state.status == "completed"
    [note] = t.say("Kan du ringa mig?") and t.of(RaiseAlert)
    assert (note.level, note.question_id, note.text) == ("message", "_after_end",
                                                         "Kan du ringa mig?")
    assert "får läsa det du skrev" in t.texts
    [small] = t.say("Tack! 👍") and t.of(RaiseAlert)
    assert small.level == "note" and "redan svarat på alla" in t.texts
    t.say("mina svar")
    assert "Det här har du svarat" in t.texts and not t.of(RaiseAlert)
    [harm] = t.say("jag vill dö") and t.of(RaiseAlert)
    assert harm.level == "urgent" and "90101" in t.texts


def test_after_a_stop_the_child_is_not_told_they_answered_everything(talk):
    t = talk("session-feedback")
    t.say("5")
    t.say("sluta")
    t.say("ja")
    assert t.state.status == "stopped"
    t.say("hej")
    assert "Frågorna är slut nu" in t.texts and "redan svarat på alla" not in t.texts


def test_after_the_end_of_an_anonymous_survey_nothing_is_kept_and_the_child_is_told(talk):
    t = talk("session-feedback")
    t.state.campaign_id = 7
    for answer in ["5", "5", "5", "5"]:
        t.say(answer)
    t.say("Kan du ringa mig?")
    assert not t.of(RaiseAlert) and "anonyma" in t.texts and "116 111" in t.texts

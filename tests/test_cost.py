"""`tala flows cost` counts what the SMS channel really sends: checked against playing the
same paths through the engine and counting the segments of each reply."""

from __future__ import annotations

import subprocess
import sys

import pytest

from admin_cli.cost import cost
from bot.channels.sms import render_sms
from bot.channels.sms_text import segments
from flows import messages as M
from flows.engine import Say
from tests.conftest import Talk


def _played(runtime, qn, lang, replies) -> int:
    """Segments of the invitation and of every reply, playing `replies` for real."""
    invite = runtime.catalogs.gettext(lang, M.INVITE_SMS).format(sender="Socialtjänsten")
    total = sum(segments(p).count for p in render_sms([Say(invite)]))
    t = Talk(runtime, qn, lang)
    turns = [t.last] + [t.say(r) for r in replies]
    assert t.state.status == "completed"
    for effects in turns:
        says = [e for e in effects if isinstance(e, Say)]
        total += sum(segments(p).count for p in render_sms(says))
    return total


@pytest.mark.parametrize("lang", ["sv", "en"])
def test_cost_matches_the_cheapest_and_the_dearest_way_played_for_real(runtime,
                                                                       questionnaires, lang):
    qn = questionnaires["session-feedback"]
    c = cost(runtime, qn, lang)
    assert c.shortest.segments == _played(runtime, qn, lang, ["5", "5", "5", "5"])
    assert c.longest.segments == _played(runtime, qn, lang,
                                         ["1", "Om skolan", "1", "Mer tid", "5", "5"])
    assert c.shortest.encoding == "GSM-7"


def test_whatsapp_counts_the_messages_of_the_longest_way_played_for_real(runtime, questionnaires):
    """One template (the invitation), then every reply as the WhatsApp channel lays it out:
    its texts, and a question with buttons as a message of its own."""
    from bot.channels.whatsapp import split_reply

    qn = questionnaires["session-feedback"]
    t = Talk(runtime, qn, "ar")
    turns = [t.last] + [t.say(r) for r in ["1", "Om skolan", "1", "Mer tid", "5", "5"]]
    laid_out = [split_reply([e for e in effects if isinstance(e, Say)], "ar", "اختر")
                for effects in turns]
    played = 1 + sum(len(parts) + (buttons is not None) for parts, buttons in laid_out)
    assert any(buttons for _, buttons in laid_out)  # session-feedback has buttons on WhatsApp
    assert cost(runtime, qn, "ar").whatsapp == played
    assert played < cost(runtime, qn, "ar").longest.segments  # no segments to pay for


def test_cost_of_the_follow_ups_orders_paths(runtime, questionnaires):
    for qn in questionnaires.values():
        c = cost(runtime, qn, "sv")
        assert 0 < c.shortest.segments < c.longest.segments
        assert c.shortest.messages <= c.longest.messages


def test_emoji_never_make_a_gsm7_language_message_ucs2_but_other_scripts_stay():
    [sv] = render_sms([Say("Hej! 😀 Hur mår du?")])
    assert sv == "Hej! Hur mår du?" and segments(sv).encoding == "GSM-7"
    [ar] = render_sms([Say("مرحبا! كيف حالك؟")])
    assert ar == "مرحبا! كيف حالك؟" and segments(ar).encoding == "UCS-2"


def test_flows_cost_command_prints_every_questionnaire_and_language():
    result = subprocess.run([sys.executable, "-m", "admin_cli.main", "flows", "cost"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    from flows.i18n import Catalogs
    languages = len(Catalogs.load().languages)
    for qid in ("followup-6-11", "followup-12-18", "session-feedback"):
        assert result.stdout.count(qid) == languages  # one row per language
    assert "GSM-7" in result.stdout
    assert "WhatsApp" in result.stdout and "Bara inbjudan betalas" in result.stdout
    said = " ".join(result.stdout.split())
    assert "webbchatt" in said and "Webbchatt: sms-segmenten i det enda sms:et" in said

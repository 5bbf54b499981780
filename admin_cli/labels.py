"""Names staff read for the ids in the data: life areas, session states, alert levels and
topics, change words, and a child's answer as the child saw it.

Shared by the summary, the report, the export and `tala alerts`. Every title is Swedish, marked
with N_ where it is defined and translated with `title()` (or `_()`) where it is shown, so one
table serves Swedish and English staff alike.
"""

from __future__ import annotations

from typing import Any

from admin_cli.i18n import N_, _
from flows.model import Questionnaire
from storage.sql import AnswerRow, as_utc

# Caseworker-facing, in Swedish: the order areas are shown in, "wants help with" first.
DOMAIN_TITLES = {
    "help": N_("Vill ha hjälp med"),
    "safety": N_("Trygghet"),
    "home": N_("Hemma och viktiga vuxna"),
    "school": N_("Skolan"),
    "friends": N_("Kompisar och fritid"),
    "health": N_("Hälsa och mående"),
    "caseworker": N_("Kontakten med socialtjänsten"),
    "feedback": N_("Om träffen"),
    "general": N_("Övrigt"),
}
STATUS_TITLES = {"completed": N_("klar"), "stopped": N_("avbruten av barnet"),
                 "expired": N_("inte klar (tiden gick ut)"), "invited": N_("inte påbörjad"),
                 "active": N_("pågår"), "paused": N_("pausad")}
LEVEL_TITLES = {"urgent": N_("BRÅDSKANDE"), "concern": N_("Oro"), "message": N_("Meddelande"),
                "note": N_("Hälsning")}
# Where an alert came from that is not a question of the questionnaire.
OUTSIDE_QUESTIONS = {"_after_end": N_("(efter sista frågan)"),
                     "_before_start": N_("(före första frågan)")}
# What a safeguarding alert is about, for the caseworker (the topic ids are in the YAML files).
TOPIC_TITLES = {
    "unsafe_home": N_("känner sig inte trygg där hen bor"),
    "harm_by_adult": N_("har blivit illa behandlad av en vuxen"),
    "harm_disclosed": N_("berättar att hen har blivit utsatt"),
    "hurt_by_others": N_("blir slagen eller skadad av andra"),
    "pressured_or_exploited": N_("blir pressad eller utnyttjad"),
    "self_harm": N_("skriver om att skada sig själv eller inte vilja leva"),
    "self_harm_thoughts": N_("har tankar på att skada sig själv"),
    "suicidal_thoughts": N_("har tankar på att inte vilja leva"),
    "suicidal_thoughts_now": N_("har tankar på att inte vilja leva, just nu"),
    "very_low_home_wellbeing": N_("mår mycket dåligt där hen bor"),
    "very_low_mood": N_("mår mycket dåligt inuti"),
    "deep_sadness": N_("blir så ledsen att det gör jätteont"),
    "unsafe_school_or_outside": N_("känner sig inte trygg i skolan eller ute"),
    "violence_or_abuse": N_("skriver om våld eller övergrepp"),
    "message_after_end": N_("har skrivit efter sista frågan"),
    "sexual_abuse": N_("skriver om sexuella övergrepp"),
    "violence_at_home": N_("skriver om våld mellan vuxna hemma"),
    "threats_or_control": N_("skriver om hot eller kontroll, till exempel hedersrelaterad"),
    "afraid_to_go_home": N_("är rädd för att gå hem"),
    "neglect": N_("skriver om att inte få mat eller att lämnas ensam"),
}
# The change words: ids in the JSON, Swedish in what a caseworker reads.
CHANGE_WORDS = {"better": N_("bättre"), "worse": N_("sämre"),
                "unchanged": N_("ingen tydlig förändring")}
# The case phase of an invitation (storage.models.PHASES), as the unit's indicators name it.
PHASE_TITLES = {"forhandsbedomning": N_("förhandsbedömning"), "utredning": N_("utredning"),
                "uppfoljning": N_("uppföljning"), "placering": N_("placering")}


def phase_problem(phase: str | None) -> str | None:
    """What is wrong with a case phase someone typed, in the staff language; None when it is
    one of the four (or not given)."""
    if phase is None or phase in PHASE_TITLES:
        return None
    return _("Fasen '{phase}' finns inte. Skriv en av: {phases}.").format(
        phase=phase, phases=", ".join(PHASE_TITLES))


def title(table: dict[str, str], key: str) -> str:
    """The staff-language title for `key` in one of the tables above; the id itself when the
    table does not know it (a topic added to the YAML before its title was written here)."""
    found = table.get(key)
    return _(found) if found else key


def domain_order(domain: str) -> int:
    return list(DOMAIN_TITLES).index(domain) if domain in DOMAIN_TITLES else 99


def iso(dt: Any) -> str | None:
    dt = as_utc(dt)
    return dt.isoformat() if dt else None


def answer_label(qn: Questionnaire | None, qid: str, value: Any, skipped: bool) -> str | None:
    """The answer as the child saw it (the questionnaire's own Swedish words), or None when it
    cannot be named (free text, an unknown question)."""
    if skipped:
        return _("(hoppade över)")
    if qn is None or not qn.has(qid):
        return None
    q = qn.question(qid)
    if q.type == "yes_no":
        return {"yes": _("Ja"), "no": _("Nej")}.get(value)
    if q.type == "scale" and isinstance(value, int):
        word = q.scale.labels.get(value)
        return _("{value} av {max}").format(value=value, max=q.scale.max) + (
            f" ({word})" if word else "")
    if q.type in ("choice", "multi_choice"):
        ids = value if isinstance(value, list) else [value]
        return ", ".join(q.option(i).text for i in ids if q.option(i))
    return None


def answer_value(a: AnswerRow) -> Any:
    """An answer row's value: option id(s) or number, None for free text or a skip."""
    if a.value_options is not None:
        return list(a.value_options)
    if a.value_option is not None:
        return a.value_option
    if a.value_num is not None:
        return int(a.value_num) if float(a.value_num).is_integer() else a.value_num
    return None


SENT = ("sent", "delivered")
WAITING = (None, "queued", "retry", "unsure")
# What became of an invitation sent, waiting in the queue, or failed, by channel: the words
# `tala invite` prints and the staff pages show.
DELIVERY = {
    "sms": (N_("Inbjudan skickad till barnet i ärende {case} via sms."),
            N_("Inbjudan till barnet i ärende {case} ligger i kö för sms: den skickas så snart "
               "det går."),
            N_("Sms:et med inbjudan till barnet i ärende {case} gick inte att skicka "
               "({status}). Kontrollera numret och försök igen.")),
    "whatsapp": (N_("Inbjudan skickad till barnet i ärende {case} via WhatsApp."),
                 N_("Inbjudan till barnet i ärende {case} ligger i kö för WhatsApp: den "
                    "skickas så snart det går."),
                 N_("Inbjudan till barnet i ärende {case} gick inte att skicka på WhatsApp "
                    "({status}). Kontrollera numret och försök igen.")),
    "web": (N_("Ett sms med länken till webbchatten skickat till barnet i ärende {case}."),
            N_("Sms:et med länken till webbchatten för barnet i ärende {case} ligger i kö: det "
               "skickas så snart det går."),
            N_("Sms:et med länken till webbchatten för barnet i ärende {case} gick inte att "
               "skicka ({status}). Kontrollera numret och försök igen.")),
}


def delivery_text(inv: dict) -> tuple[str, bool] | None:
    """What became of an invitation sent by SMS or WhatsApp (`invite`'s `invitation`), and
    whether it is a problem; None for a channel that sends nothing first."""
    case, delivery = inv["case"], inv["delivery"]
    if inv.get("by_sms"):
        return _("WhatsApp tog inte emot inbjudan till barnet i ärende {case}, så den "
                 "skickades som sms i stället.").format(case=case), False
    if inv["channel"] not in DELIVERY:
        return None
    sent, waiting, failed = DELIVERY[inv["channel"]]
    if delivery in SENT:
        return _(sent).format(case=case), False
    if delivery in WAITING:
        return _(waiting).format(case=case), False
    return _(failed).format(case=case, status=delivery), True

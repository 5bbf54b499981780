"""A child's scale answers over time: a series per question answered in more than one
session, the pair of sessions compared (the latest and the previous one, or what --compare
names), and the change between them (see rules.CHANGE_THRESHOLD)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from admin_cli.i18n import _
from admin_cli.labels import domain_order
from admin_cli.summary.rules import (CHANGE_THRESHOLD, CompareError, change_word, is_number,
                                     threshold_steps)

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _session_list(sessions: list[dict]) -> str:
    return "; ".join(f"{s['date']} {s['id'][:8]} ({s['questionnaire']})" for s in sessions)


def _resolve(ref: str, which: str, sessions: list[dict], case_ref: str) -> tuple[str, Any]:
    """('date', date) or ('session', session dict); CompareError when it matches nothing."""
    ref = ref.strip()
    howto = _("Skriv ett datum som ÅÅÅÅ-MM-DD (det senaste tillfället den dagen eller före "
              "används) eller början av ett tillfälles id")
    listing = (_("Tillfällen för {case} i sammanfattningen: {sessions}.").format(
        case=case_ref, sessions=_session_list(sessions)) if sessions else
        _("{case} har inga avslutade tillfällen i sammanfattningen.").format(case=case_ref))
    if DATE.match(ref):
        try:
            day = date.fromisoformat(ref)
        except ValueError:
            raise CompareError(_("--compare {which} '{ref}' är inget riktigt datum. {howto}. "
                                 "{listing}").format(which=which, ref=ref, howto=howto,
                                                     listing=listing)) from None
        if not any(s["date"] and s["date"] <= ref for s in sessions):
            raise CompareError(_("--compare {which} {ref}: det finns inget tillfälle den dagen "
                                 "eller före. {howto}. {listing}").format(
                which=which, ref=ref, howto=howto, listing=listing))
        return "date", day
    prefix = ref.lower()
    found = [s for s in sessions if prefix and s["id"].startswith(prefix)]
    if not found:
        raise CompareError(_("--compare {which} '{ref}' stämmer inte med något tillfälle. "
                             "{howto}. {listing}").format(which=which, ref=ref, howto=howto,
                                                         listing=listing))
    if len(found) > 1:
        raise CompareError(_("--compare {which} '{ref}' stämmer med {n} tillfällen: skriv mer "
                             "av id:t. {sessions}.").format(which=which, ref=ref, n=len(found),
                                                           sessions=_session_list(found)))
    return "session", found[0]


def _pick(r: tuple[str, Any], ss: list[dict]) -> dict | None:
    if r[0] == "session":
        return r[1]
    day = r[1].isoformat()
    on_or_before = [s for s in ss if s["date"] and s["date"] <= day]
    return on_or_before[-1] if on_or_before else None


def pairs(sessions: list[dict], compare: tuple[str, str] | None,
          case_ref: str) -> list[tuple[dict, dict]]:
    """(before, after) per questionnaire: the previous and latest session, or what compare
    names."""
    by_qn: dict[str, list[dict]] = {}
    for s in sessions:  # already oldest first
        by_qn.setdefault(s["questionnaire"], []).append(s)
    if compare is None:
        return [(ss[-2], ss[-1]) for ss in by_qn.values() if len(ss) >= 2]
    before = _resolve(compare[0], _("FÖRE"), sessions, case_ref)
    after = _resolve(compare[1], _("EFTER"), sessions, case_ref)
    fixed = {r[1]["questionnaire"] for r in (before, after) if r[0] == "session"}
    if len(fixed) > 1:
        raise CompareError(_("--compare: de två tillfällena är från olika frågeformulär "
                             "({questionnaires}), så svaren kan inte jämföras. Tillfällen: "
                             "{sessions}.").format(questionnaires=", ".join(sorted(fixed)),
                                                   sessions=_session_list(sessions)))
    out = []
    for qid, ss in by_qn.items():
        if fixed and qid not in fixed:
            continue
        b, a = _pick(before, ss), _pick(after, ss)
        if b is None or a is None or b["id"] == a["id"]:
            continue
        if (b["started_at"] or "") > (a["started_at"] or ""):
            raise CompareError(_("--compare: FÖRE ({b_date}, {b_id}) är senare än EFTER "
                                 "({a_date}, {a_id}): ge det tidigare först, som --compare "
                                 "FÖRE EFTER.").format(b_date=b["date"], b_id=b["id"][:8],
                                                       a_date=a["date"], a_id=a["id"][:8]))
        out.append((b, a))
    if not out:
        raise CompareError(_("--compare {before} {after}: båda pekar på samma tillfälle, så det "
                             "finns inget att jämföra. Välj ett FÖRE med ett eget tillfälle. "
                             "Tillfällen: {sessions}.").format(
            before=compare[0], after=compare[1], sessions=_session_list(sessions)))
    return out


def over_time(sessions: list[dict], compare: tuple[str, str] | None, case_ref: str) -> dict:
    """Scale answers matched across sessions by (questionnaire, question id): a series per
    question answered in more than one session, and the change between the pair compared.

    Questionnaire versions are matched by question id; the scale is the one the questionnaire
    has now, and a value outside it (the scale was changed) is left out of the series."""
    found = pairs(sessions, compare, case_ref)
    pair_of = {b["questionnaire"]: (b, a) for b, a in found}
    series: dict[tuple[str, str], dict] = {}
    for s in sessions:
        for i, a in enumerate(s["answers"]):
            sc = a.get("scale")
            if a["skipped"] or not sc or not is_number(a["value"]):
                continue
            if not sc["min"] <= a["value"] <= sc["max"]:
                continue
            item = series.setdefault((s["questionnaire"], a["question_id"]), {
                "questionnaire": s["questionnaire"], "question_id": a["question_id"],
                "question": a["question"], "domain": a["domain"], "scale": dict(sc),
                "threshold": threshold_steps(sc["min"], sc["max"]), "order": i,
                "series": []})
            item["series"].append({"session_id": s["id"], "date": s["date"],
                                   "value": a["value"]})
    questions = []
    for item in series.values():
        if len(item["series"]) < 2:
            continue
        item["change"] = None
        if item["questionnaire"] in pair_of:
            b, a = pair_of[item["questionnaire"]]
            pb = next((p for p in item["series"] if p["session_id"] == b["id"]), None)
            pa = next((p for p in item["series"] if p["session_id"] == a["id"]), None)
            if pb and pa:
                sc = item["scale"]
                item["change"] = {
                    "before": pb, "after": pa, "difference": pa["value"] - pb["value"],
                    "word": change_word(pb["value"], pa["value"], sc["min"], sc["max"])}
        questions.append(item)
    questions.sort(key=lambda q: (domain_order(q["domain"]), q["questionnaire"], q["order"]))
    for q in questions:
        del q["order"]
    return {
        "mode": "compare" if compare else "latest",
        "compare": {"before": compare[0], "after": compare[1]} if compare else None,
        "threshold": {"share_of_range": float(CHANGE_THRESHOLD),
                      "steps_1_5": threshold_steps(1, 5), "steps_0_10": threshold_steps(0, 10)},
        "pairs": [{"questionnaire": b["questionnaire"],
                   "before": {"session_id": b["id"], "date": b["date"]},
                   "after": {"session_id": a["id"], "date": a["date"]}} for b, a in found],
        "questions": questions,
    }

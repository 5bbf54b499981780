"""Telling staff of an alert: who is told, by which route, at which hours.

    in the unit's office hours   the case's responsible caseworker: SMS to the work phone and
                                 an e-mail, each where tala has one; with nobody responsible,
                                 or nobody reachable, the unit's managers
    outside them, urgent answer  the unit's on-call number (socialjour) by SMS, instead of the
                                 caseworker's phone; the caseworker's e-mail still goes (or,
                                 without one, the SMS), to be read when they are back
    several alerts for one case  one message: whoever was told of the case in the last
                                 COMBINE_WITHIN is not told again, the alert joins that notice
    not acknowledged in time     the unit's managers (sent in office hours), and at once when a
                                 message could not be delivered (Twilio's status callback, a
                                 refused e-mail)

Every message is content-free (the case and how to read it, never what the child said) and
goes through the send queue on its own channel's line (`sms`, `email`), so it is sent once,
retried, and never waits behind a bulk run. Each is a notice in SQL: `tala alerts` shows who
was told, on which route, when, and what the provider said became of it.

What a child is told after an urgent answer depends on the same rules (`reach`): the message
path reads the units' hours from Redis (cached for a minute), never SQL.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Callable

from bot.hours import HoursError, OfficeHours

_parsed = lru_cache(maxsize=256)(OfficeHours.parse)  # read on every message: parsed once

if TYPE_CHECKING:
    from storage.queue import SendQueue
    from storage.sql import Child, Database
    from storage.state import StateStore

log = logging.getLogger("tala.notify")

COMBINE_WITHIN = timedelta(minutes=10)
UNITS_CACHE_SECONDS = 60.0
ON_CALL = "on-call"  # a notice's recipient when it went to the unit's on-call number

# To staff, in Swedish, and never with what the child answered: a work phone is read by others.
ALERT_TEXT = "tala: Ärende {case} har ett nytt viktigt svar. Läs det med: tala alerts"
ON_CALL_TEXT = ("tala: Ärende {case} ({unit}) har ett brådskande svar utanför kontorstid. "
                "Ansvarig: {caseworker}. Läs det med: tala alerts")
MESSAGE_TEXT = ("tala: Barnet i ärende {case} har skrivit till dig efter frågorna. Läs det "
                "med: tala alerts")
ESCALATION_TEXT = ("tala: Ett viktigt svar i ärende {case} har inte kvitterats på {hours} "
                   "timmar. Se tala alerts.")
UNDELIVERED_TEXT = ("tala: Ett viktigt svar i ärende {case} kunde inte lämnas till ansvarig. "
                    "Se tala alerts.")
# An e-mail: the subject, an empty line, the text.
ALERT_MAIL = ("tala: nytt viktigt svar i ärende {case}\n\n"
              "Hej!\n\nI ärende {case} har barnet gett ett svar som någon behöver läsa snart.\n\n"
              "Läs svaren med: tala summary {case}\n"
              "Se och kvittera larmet med: tala alerts\n\n"
              "Svaret står inte i det här mejlet, med avsikt.\n-- \ntala")
MESSAGE_MAIL = ("tala: barnet i ärende {case} har skrivit till dig\n\n"
                "Hej!\n\nI ärende {case} har barnet skrivit något efter sista frågan.\n\n"
                "Läs det med: tala summary {case}\n"
                "Se och kvittera med: tala alerts\n\n"
                "Vad barnet skrev står inte i det här mejlet, med avsikt.\n-- \ntala")
ESCALATION_MAIL = ("tala: viktigt svar i ärende {case} är inte kvitterat\n\n"
                   "Hej!\n\nEtt viktigt svar i ärende {case} har inte kvitterats av någon "
                   "{why}.\n\nSe larmet med: tala alerts\n\n"
                   "Svaret står inte i det här mejlet, med avsikt.\n-- \ntala")


def _hours(text: str | None) -> OfficeHours:
    """A unit's hours as stored (tala stores only what it could read); anything else is the
    default, so a child's message never fails on a unit's setting."""
    try:
        return _parsed(text)
    except HoursError:
        log.error("unreadable office hours stored for a unit; the default is used")
        return _parsed(None)


def _each(people: list, routes: set[str], sms: str, mail: str,
          phone_too: bool = True) -> list[tuple[str, str, str, str]]:
    """(who, route, address, text) for each person's e-mail and work phone, where the route
    can send. `phone_too=False`: the phone only for someone without e-mail (at night, when
    the on-call number is told, a caseworker hears of it by e-mail)."""
    out = []
    for p in people:
        if p.email and "email" in routes:
            out.append((p.name, "email", p.email, mail))
        if p.phone and "sms" in routes and (phone_too or not p.email):
            out.append((p.name, "sms", p.phone, sms))
    return out


class StaffNotifier:
    def __init__(self, db: Database, store: StateStore, queue: SendQueue | None,
                 routes: Callable[[], set[str]], timezone: str,
                 escalate_after: timedelta, clock: Callable[[], datetime]):
        self.db = db
        self.store = store
        self.queue = queue
        self.routes = routes  # the staff routes that can send: "sms", "email"
        self.timezone = timezone
        self.escalate_after = escalate_after
        self.clock = clock
        self._units: dict[str, dict] = {}
        self._units_read = -UNITS_CACHE_SECONDS

    # ------------------------------------------------------------------ units
    def set_unit(self, name: str, *, on_call: str | None = None,
                 office_hours: str | None = None) -> None:
        """Change a unit's on-call number or office hours (None keeps, "" removes), in SQL,
        and publish what the message path needs."""
        if office_hours:
            office_hours = str(OfficeHours.parse(office_hours))  # raises HoursError
        self.db.set_unit(name, on_call=on_call, office_hours=office_hours)
        self.publish_units()

    def publish_units(self) -> None:
        self.store.publish_units({u.name: {"hours": u.office_hours,
                                           "on_call": u.on_call_enc is not None}
                                  for u in self.db.units()})
        self._units_read = -UNITS_CACHE_SECONDS  # read again at once

    def _unit_info(self, unit: str | None) -> dict:
        if self.units_due(0):
            self.units_read(self.store.units())
        return self._units.get(unit or "", {})

    def units_due(self, margin: float = 5.0) -> bool:
        """Whether the units' hours are to be read again (within `margin` seconds): the event
        loop reads them itself first, so a step there never reads Redis (bot/conversation.py)."""
        return time.monotonic() - self._units_read >= UNITS_CACHE_SECONDS - margin

    def units_read(self, units: dict[str, dict]) -> None:
        self._units = units
        self._units_read = time.monotonic()

    def reach(self, unit: str | None, now: datetime) -> str:
        """Who hears of an urgent answer now: "office" (the caseworker), "on_call" (the unit's
        on-call service) or "closed" (nobody until the office opens). Read on the message path:
        from Redis at most once a minute, never from SQL."""
        info = self._unit_info(unit)
        if _hours(info.get("hours")).open_at(now, self.timezone):
            return "office"
        return "on_call" if info.get("on_call") and "sms" in self.routes() else "closed"

    # ------------------------------------------------------------------ telling
    def notify(self, alert_id: int, child: Child, level: str) -> int:
        """Tell whoever must hear of this alert now; returns how many were told (a notice
        they already had of this case counts). The alert is marked notified if anyone was."""
        if level == "note":
            return 0  # a greeting or thanks after the end: in the summary, nobody is woken
        now = self.clock()
        routes = self.routes()
        unit = self.db.unit(child.unit)
        on_call = (self.db.on_call(unit) if level == "urgent" and "sms" in routes
                   and not self._office_open(unit, now) else None)
        targets: list[tuple[str, str, str, str]] = []
        if on_call:
            targets.append((ON_CALL, "sms", on_call, ON_CALL_TEXT.format(
                case=child.case_ref, unit=child.unit, caseworker=child.caseworker or "ingen")))
        sms, mail = (MESSAGE_TEXT, MESSAGE_MAIL) if level == "message" else (ALERT_TEXT,
                                                                              ALERT_MAIL)
        targets += _each(self._responsible(child, routes), routes, sms.format(
            case=child.case_ref), mail.format(case=child.case_ref), phone_too=not on_call)
        told = self._tell([alert_id], child, "notify", targets, now)
        if told:
            self.db.mark_alert(alert_id, notified_at=now)
        else:
            log.warning("alert %s: nobody with a work phone or e-mail to tell; it waits in "
                        "'tala alerts'", alert_id)
        return told

    def _office_open(self, unit, now: datetime) -> bool:
        return _hours(unit.office_hours if unit else None).open_at(now, self.timezone)

    def _responsible(self, child: Child, routes: set[str]) -> list:
        def reachable(c) -> bool:
            return bool((c.phone and "sms" in routes) or (c.email and "email" in routes))

        people = [c for c in self.db.contacts(names=[child.caseworker]) if reachable(c)] \
            if child.caseworker else []
        return people or [c for c in self.db.contacts(role="manager", unit=child.unit)
                          if reachable(c)]

    def _tell(self, alert_ids: list[int], child: Child, kind: str,
              targets: list[tuple[str, str, str, str]], now: datetime) -> int:
        """One message per (recipient, route), unless that recipient had one about this case
        within COMBINE_WITHIN: then these alerts join it. Job ids follow from the first alert,
        so a retry after a crash sends (and records) nothing twice."""
        if self.queue is None:
            return 0
        earlier = {(n.recipient, n.route): n for n in
                   self.db.recent_notices(child.id, kind, now - COMBINE_WITHIN)}
        told = 0
        for i, (who, route, address, text) in enumerate(targets):
            notice = earlier.get((who, route))
            if notice is None:
                job_id = f"alert:{alert_ids[0]}:{kind}:{route}:{i}"
                notice = self.db.add_notice(child.id, alert_ids[0], kind, who, route, job_id, now)
                earlier[(who, route)] = notice
            # Queued again also when joining: a no-op for a job queued before, and the message
            # itself when an earlier try recorded the notice but was cut off before queueing.
            self.queue.enqueue(notice.job_id, address, text, kind="staff", channel=route)
            for alert_id in alert_ids:
                self.db.join_notice(notice.id, alert_id)
            told += 1
        return told

    # ------------------------------------------------------------------ escalating
    def escalate(self, now: datetime | None = None) -> int:
        """Alerts nobody acknowledged in time go to the unit's managers, in office hours; one
        whose message could not be delivered goes at once. Returns how many alerts."""
        now = now or self.clock()
        due = self.db.alerts_to_escalate(now - self.escalate_after)
        notices = self.db.notices_of([a.id for a, _ in due])
        by_child: dict[int, tuple[Child, list]] = {}
        for alert, child in due:
            by_child.setdefault(child.id, (child, []))[1].append(alert)
        escalated = 0
        routes = self.routes()
        for child, alerts in by_child.values():
            failed = [a for a in alerts if any(n.status in ("undelivered", "failed")
                                               for n in notices[a.id] if n.kind == "notify")]
            if not failed and not self._office_open(self.db.unit(child.unit), now):
                continue  # not at night: the managers read it when the office opens
            hours = max(1, round(self.escalate_after.total_seconds() / 3600))
            sms = (UNDELIVERED_TEXT if failed else ESCALATION_TEXT).format(
                case=child.case_ref, hours=hours)
            why = "eftersom meddelandet inte kunde lämnas" if failed else f"på {hours} timmar"
            mail = ESCALATION_MAIL.format(case=child.case_ref, why=why)
            targets = _each(self.db.contacts(role="manager", unit=child.unit), routes, sms,
                            mail)
            if not self._tell([a.id for a in alerts], child, "escalate", targets, now):
                log.warning("alerts of a case in unit %s: no manager to escalate to", child.unit)
            for alert in alerts:
                self.db.mark_alert(alert.id, escalated_at=now)
            escalated += len(alerts)
        return escalated

    # ------------------------------------------------------------------ delivery
    def delivered(self, job_id: str, status: str, error: str | None = None) -> None:
        """What became of a staff message: sent, delivered, undelivered or failed."""
        self.db.set_notice_status(job_id, status, error)

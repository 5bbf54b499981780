"""Anonymous group surveys: a class answers by keyword (SMS) or one shared Telegram link, with
nothing kept that says who. A mixin of `bot.service.ConversationService`."""

from __future__ import annotations

import json
import re
import secrets
from datetime import date
from zoneinfo import ZoneInfo

from bot.conversation import Reply
from bot.invitations import CODE_ALPHABET, normal_code
from bot.refusal import Refusal, staff_text
from flows import engine
from flows import messages as M
from flows.engine import Say, State
from flows.i18n import SOURCE_LANG, normalise
from storage.sql import Campaign, new_id

# Words a campaign keyword may never be: the SMS provider's own, and tala's commands.
ALWAYS_RESERVED = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit",
                             "revoke", "optout", "start", "yes", "unstop", "help", "info",
                             "ja", "nej", "no", "hej", "hi", "paus", "sluta", "hjalp", "svar",
                             "sprak", "language", "tillbaka", "back", "skip"})


class CampaignError(Refusal):
    """The campaign cannot be made as asked; the message says what to change."""


class Campaigns:
    def create_campaign(self, name: str, questionnaire_id: str, keyword: str, opens: date,
                        closes: date, *, unit: str | None = None, langs: list[str] | None = None,
                        actor: str = "unknown", reserved: frozenset[str] = frozenset()
                        ) -> Campaign:
        """A survey pupils join by texting `keyword` (matched like RapidPro's triggers: the
        first word, case and accents folded) or by opening its Telegram link."""
        langs = langs or [SOURCE_LANG]
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
            raise CampaignError(staff_text("En kampanjs namn består av bokstäver, siffror och "
                                           "- _ . (högst 64 tecken), till exempel "
                                           "ak8-hosten-2026."))
        if self.db.campaign(name) is not None:
            raise CampaignError(staff_text("Det finns redan en kampanj som heter {name}."),
                                name=name)
        if questionnaire_id not in self.questionnaires:
            raise CampaignError(staff_text("Det finns inget frågeformulär '{questionnaire}'. "
                                           "De som finns: {known}."),
                                questionnaire=questionnaire_id,
                                known=", ".join(sorted(self.questionnaires)))
        word = normalise(keyword)
        if word in reserved or word in ALWAYS_RESERVED:
            raise CampaignError(staff_text("'{keyword}' är ett ord som sms-leverantören eller "
                                           "tala redan använder; välj ett annat nyckelord."),
                                keyword=keyword)
        if not re.fullmatch(r"[a-z0-9]{3,20}", word):
            raise CampaignError(staff_text("Ett nyckelord är ett ord på 3 till 20 bokstäver "
                                           "eller siffror, till exempel SKOLA8: det är det "
                                           "eleverna skickar i sitt sms."))
        if closes < opens:
            raise CampaignError(staff_text("--closes är före --opens."))
        unknown = [lang for lang in langs if not self.rt.catalogs.has(lang)]
        if unknown:
            raise CampaignError(staff_text("Det finns ingen översättning till {unknown}. "
                                           "Språk: {known}."),
                                unknown=", ".join(unknown),
                                known=", ".join(self.rt.catalogs.languages))
        for other in self.db.campaigns():
            if (other.keyword == word and other.closed_at is None
                    and other.opens <= closes and opens <= other.closes):
                raise CampaignError(staff_text("Nyckelordet används redan av kampanjen "
                                               "{campaign} ({opens} – {closes}); välj ett "
                                               "annat."),
                                    campaign=other.name, opens=other.opens,
                                    closes=other.closes)
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(12))
        campaign = self.db.add_campaign(Campaign(
            name=name, questionnaire_id=questionnaire_id, keyword=word, code=code, unit=unit,
            opens=opens, closes=closes, langs=langs, created_by=actor))
        self._publish_campaign(campaign)
        self.db.audit(actor, "campaign", None, f"created {name}")
        return campaign

    def close_campaign(self, name: str, actor: str) -> Campaign | None:
        campaign = self.db.close_campaign(name, self.clock())
        if campaign is not None:
            self._publish_campaign(campaign)
            self.db.audit(actor, "campaign", None, f"closed {name}")
        return campaign

    def _publish_campaign(self, c: Campaign) -> None:
        """What the per-message path needs to know of a campaign, in Redis (no SQL there)."""
        info = json.dumps({"id": c.id, "name": c.name, "questionnaire": c.questionnaire_id,
                           "opens": c.opens.isoformat(), "closes": c.closes.isoformat(),
                           "langs": c.langs, "closed": c.closed_at is not None})
        pipe = self.store.r.pipeline()
        pipe.hset(self.store.campaigns_key("keyword"), c.keyword, info)
        pipe.hset(self.store.campaigns_key("code"), c.code, info)
        pipe.execute()

    def campaign_by_keyword(self, text: str) -> dict | None:
        words = normalise(text).split()
        if not words:
            return None
        raw = self.store.r.hget(self.store.campaigns_key("keyword"), words[0])
        return json.loads(raw) if raw else None

    def campaign_by_code(self, code: str) -> dict | None:
        raw = self.store.r.hget(self.store.campaigns_key("code"), normal_code(code))
        return json.loads(raw) if raw else None

    def start_anonymous(self, channel: str, address: str, campaign: dict,
                        message_id: str | None = None, trigger: str | None = None) -> Reply:
        """A pupil joins a survey. The phone number or chat id is kept only in the live
        session (encrypted) to go on talking, and is dropped when the session ends."""
        now = self.clock()
        lang = campaign["langs"][0] if campaign["langs"] else SOURCE_LANG
        today = now.astimezone(ZoneInfo(self.rt.policy.timezone)).date()
        if campaign["closed"] or today > date.fromisoformat(campaign["closes"]):
            return Reply([Say(self.rt.catalogs.gettext(lang, M.SURVEY_CLOSED))])
        if today < date.fromisoformat(campaign["opens"]):
            opens = date.fromisoformat(campaign["opens"]).strftime("%Y-%m-%d")
            return Reply([Say(self.rt.catalogs.gettext(lang, M.SURVEY_NOT_OPEN).format(
                date=opens))])
        qn = self.questionnaires[campaign["questionnaire"]]
        sid = new_id()
        state = engine.new_state(sid, qn, lang, now)
        state.channel, state.contact, state.campaign_id = channel, address, campaign["id"]
        state.trigger = trigger
        self.store.create(state, ttl=self._ttl(state))
        self.store.bind(channel, self.crypto.lookup_hash(address), sid, self._ttl(state))
        self.store.schedule(sid, now + self.rt.policy.invitation_open)
        return self.open(sid, seen=(channel, message_id) if message_id else None)

    def _forget_contact(self, state: State) -> None:
        """An anonymous session has ended: drop (not hide) the number or chat id."""
        if state.contact:
            self.store.unbind(state.channel, self.crypto.lookup_hash(state.contact))

        def drop(s: State) -> tuple[State, None]:
            s.contact = None
            return s, None

        self.store.transact(state.session_id, drop, ttl=self._ttl)

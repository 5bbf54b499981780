"""The web chat's links: a child invited with `--channel web` is sent an SMS with a link,
`<TALA_PUBLIC_URL>/c/<token>`, to a chat page (bot/channels/web.py). A mixin of
`bot.service.ConversationService`.

- The token is random (110 bits), made with the invitation, and bound to its session like a
  chat id (`("web", token)`): the page's messages go through `receive` as any channel's.
- Everything tala sends such a child goes by SMS to their number, in the SMS lanes and at
  their rate: the invitation (with the link), reminders (the link again), a caseworker's reply.
  The number is bound to the session too, so a child who answers the SMS instead goes on there.
- The link works on one device at a time: the first browser that opens it gets a cookie, and
  any other is told it is open elsewhere. Once the questions are over, or the invitation has
  expired, the page shows only that the link no longer works: nothing about what was said.
"""

from __future__ import annotations

import hmac
import secrets

from flows import engine
from flows import messages as M
from flows.engine import Say, State
from storage.queue import DEFAULT

WEB = "web"
DEVICE = "webdevice"  # bound per link: the keyed hash of the cookie of the browser it is open on
TOKEN_LENGTH = 22  # of CODE_ALPHABET's 32 characters: 110 bits, and all GSM-7 in an SMS
OPEN, CLOSED, ELSEWHERE = "open", "closed", "elsewhere"  # what a browser that opens it gets


class WebLinks:
    def web_link(self, token: str) -> str:
        return f"{self.web_url.rstrip('/')}/c/{token}"

    def keep_web_token(self, sid: str, token: str, ttl: int) -> None:
        """At the invitation: the token, sealed with the child's key (for the reminders' link),
        and its binding to the session."""
        self.store.r.set(self.store.web_key(sid), self.crypto.encrypt(token, sid), ex=ttl)
        self.store.bind(WEB, self.crypto.lookup_hash(token), sid, ttl)

    def web_token(self, sid: str) -> str | None:
        sealed = self.store.r.get(self.store.web_key(sid))
        return self.crypto.decrypt(sealed, sid) if sealed else None

    def by_link(self, state: State, says: list[Say], job_id: str, kind: str,
                lane: str = DEFAULT) -> int:
        """What a web chat child is sent, by SMS: the invitation with the link, or the
        messages (a reminder, a caseworker's reply) with the link after them."""
        token = self.web_token(state.session_id)
        if token is None:
            return 0
        link = self.web_link(token)
        if kind == "invite":
            says = [Say(self.rt.catalogs.gettext(state.lang, M.INVITE_WEB).format(
                sender=self.sender_name, link=link))]
        elif kind == "reminder":
            says = [*says, Say(link)]
        return self.by_sms(state.session_id, state.contact, says, job_id, kind, "", lane)

    # ------------------------------------------------------------------ the page
    def web_open(self, token: str, device: str | None) -> tuple[str, State | None, str | None]:
        """A browser opens the link: (OPEN, the session, a new device secret to keep as its
        cookie, or None when it has it already); (ELSEWHERE, the session, None) when another
        browser has it (the session for its language only); or (CLOSED, None, None)."""
        sid, claimed = self._web_session(token)
        state = self.store.get(sid) if sid else None
        if state is None or state.status in engine.FINISHED:
            return CLOSED, None, None
        if claimed is None:
            new = secrets.token_urlsafe(24)
            h = self.crypto.lookup_hash(token)
            ttl = self.store.r.ttl(self.store.bind_key(WEB, h))
            if self.store.r.set(self.store.bind_key(DEVICE, h), self.crypto.lookup_hash(new),
                                nx=True, ex=max(int(ttl), 60)):
                return OPEN, state, new
            sid, claimed = self._web_session(token)  # another browser, a moment earlier
        if self._same_device(claimed, device):
            return OPEN, state, None
        return ELSEWHERE, state, None

    def web_device_ok(self, token: str, device: str | None) -> bool:
        """Whether a message from the page comes from the browser the link is open on (also
        after the questions are over: "my answers", a text for the caseworker)."""
        sid, claimed = self._web_session(token) if device else (None, None)
        return sid is not None and self._same_device(claimed, device)

    def _web_session(self, token: str) -> tuple[str | None, bytes | None]:
        """The link's session and the device it is open on, in one round trip."""
        h = self.crypto.lookup_hash(token)
        pipe = self.store.r.pipeline(transaction=False)
        pipe.get(self.store.bind_key(WEB, h))
        pipe.get(self.store.bind_key(DEVICE, h))
        sid, claimed = pipe.execute()
        return (sid.decode() if sid else None), claimed

    def _same_device(self, claimed: bytes | None, device: str | None) -> bool:
        return bool(claimed and device and hmac.compare_digest(
            claimed, self.crypto.lookup_hash(device).encode()))

"""Staff alerts by e-mail: a sender for the send queue's `email` line, over SMTP.

    TALA_SMTP_URL=smtp://USER:PASSWORD@mail.kommun.se:587   STARTTLS, required
    TALA_SMTP_URL=smtps://USER:PASSWORD@mail.kommun.se:465  TLS from the first byte
    TALA_ALERT_FROM=tala@kommun.se                          the sender address

The server's certificate is checked against the system's CAs; `?cafile=/path/ca.pem` on the URL
names a municipality's own CA instead. Only a mail server on this machine (localhost) may be
used without TLS, and then only when it offers none. What is queued is the subject, an empty
line, and the text: content-free, like the SMS (bot/notify.py writes them).

SMTP cannot be asked afterwards whether a message went out, so a try whose answer was lost is
sent again: an alert e-mail may arrive twice, never not at all. Logs name no address.
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

from bot.net import is_loopback
from bot.settings import Settings, SettingsError
from storage.queue import SendResult

log = logging.getLogger("tala.mail")

TIMEOUT = 20.0


class MailSettingsError(SettingsError):
    """TALA_SMTP_URL cannot be used; the message says what to write."""


class EmailSender:
    channel = "email"

    def __init__(self, settings: Settings):
        url = urlsplit(settings.smtp_url or "")
        if url.scheme not in ("smtp", "smtps") or not url.hostname:
            raise MailSettingsError("TALA_SMTP_URL must look like smtp://user:password@host:587 "
                                    "(STARTTLS) or smtps://user:password@host:465.")
        if not settings.alert_from or "@" not in settings.alert_from:
            raise MailSettingsError("E-mail alerts need TALA_ALERT_FROM, the address they come "
                                    "from, e.g. TALA_ALERT_FROM=tala@kommun.se.")
        self.implicit_tls = url.scheme == "smtps"
        self.host = url.hostname
        self.port = url.port or (465 if self.implicit_tls else 587)
        self.user = unquote(url.username) if url.username else None
        self.password = unquote(url.password) if url.password else None
        self.cafile = (parse_qs(url.query).get("cafile") or [None])[0]
        self.sender = settings.alert_from
        self.domain = settings.alert_from.rsplit("@", 1)[1]

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cafile)

    def _connect(self) -> smtplib.SMTP:
        if self.implicit_tls:
            return smtplib.SMTP_SSL(self.host, self.port, timeout=TIMEOUT, context=self._tls())
        smtp = smtplib.SMTP(self.host, self.port, timeout=TIMEOUT)
        try:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls(context=self._tls())
                smtp.ehlo()
            elif not is_loopback(self.host):
                raise smtplib.SMTPNotSupportedError(
                    "the mail server offers no STARTTLS: tala sends no alert in clear text")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, to: str, body: str) -> SendResult:
        subject, _, text = body.partition("\n\n")
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.sender, to, subject
        msg["Date"] = formatdate(localtime=True)
        msg["Message-ID"] = make_msgid("tala", domain=self.domain)
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
        msg.set_content(text)
        try:
            with self._connect() as smtp:
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as e:
            code = next(iter(e.recipients.values()))[0]
            log.warning("the mail server refused the recipient: %s", code)
            return SendResult(error_code=code, error=f"SMTP {code}: recipient refused",
                              permanent=code >= 500)
        except smtplib.SMTPResponseException as e:
            log.warning("the mail server refused the message: %s", e.smtp_code)
            return SendResult(error_code=e.smtp_code, error=f"SMTP {e.smtp_code}",
                              permanent=500 <= e.smtp_code < 600 and e.smtp_code != 530)
        except (smtplib.SMTPException, ssl.SSLError, socket.timeout, OSError) as e:
            log.warning("mail server unreachable: %s", type(e).__name__)
            return SendResult(error=f"{type(e).__name__}: {e}"[:300], permanent=False,
                              maybe_sent=isinstance(e, (socket.timeout,
                                                        smtplib.SMTPServerDisconnected)))
        return SendResult(sid=msg["Message-ID"])

    def find_sent(self, to: str, body: str, since: datetime) -> str | None:
        """SMTP keeps no record tala could ask: say not sent, so it goes (again)."""
        return None

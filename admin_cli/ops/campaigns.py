"""Anonymous group surveys: start one, list them, its poster, close it."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from admin_cli.access import require
from admin_cli.i18n import _, refusal_text
from admin_cli.ops import Document, OpError, not_found, op

if TYPE_CHECKING:
    from bot.app import App

POSTER_TYPES = {"pdf": "application/pdf", "png": "image/png"}


def _telegram_link(app: App, code: str) -> str | None:
    if not app.settings.telegram_bot_username:
        return None
    from bot.channels.telegram import campaign_link

    return campaign_link(app.settings, code)


def _campaign(app: App, actor: str, name: str):
    c = app.db.campaign(name)
    if c is None:
        raise not_found(_("Det finns ingen kampanj '{name}'. Skriv `tala campaign list` för "
                          "att se dem.").format(name=name))
    require(app, actor, "campaigns", unit=c.unit)
    return c


@op("POST", "/campaigns", name="campaign_create")
def campaign_create(app: App, actor: str, name: str, keyword: str, opens: date, closes: date,
                    questionnaire: str = "school-survey", unit: str | None = None,
                    lang: list | None = None) -> dict:
    """Start an anonymous survey: pupils text the keyword (or open the Telegram link) and
    answer with no name; results only in aggregate."""
    from bot.service import CampaignError

    user = require(app, actor, "campaigns", unit=unit)
    if user is not None and user.role == "manager":
        unit = unit or user.unit
    try:
        c = app.service.create_campaign(name, questionnaire, keyword, opens, closes, unit=unit,
                                        langs=lang or ["sv"], actor=actor)
    except CampaignError as e:
        raise OpError(refusal_text(e)) from None
    return {"name": c.name, "keyword": c.keyword.upper(), "opens": c.opens.isoformat(),
            "closes": c.closes.isoformat(), "sms_number": app.settings.twilio_from_number,
            "telegram": _telegram_link(app, c.code)}


@op("GET", "/campaigns", name="campaign_list")
def campaign_list(app: App, actor: str) -> list:
    """Every campaign, open or closed (a manager's unit's only)."""
    user = require(app, actor, "campaigns")
    return [{"name": c.name, "keyword": c.keyword.upper(), "questionnaire": c.questionnaire_id,
             "unit": c.unit, "opens": c.opens.isoformat(), "closes": c.closes.isoformat(),
             "closed": c.closed_at is not None}
            for c in app.db.campaigns()
            if user is None or user.role != "manager" or c.unit == user.unit]


@op("GET", "/campaigns/{name}/poster", name="campaign_poster")
def campaign_poster(app: App, actor: str, name: str, format: str = "pdf") -> Document:
    """An A4 poster for the classroom wall (pdf or png), in the campaign's languages
    (campaign_untranslated names those left off)."""
    from admin_cli.poster import PosterError, make_poster

    if format not in POSTER_TYPES:
        raise OpError(_("format ska vara pdf eller png."))
    c = _campaign(app, actor, name)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = make_poster(c, sms_number=app.settings.twilio_from_number,
                               telegram_link=_telegram_link(app, c.code),
                               catalogs=app.runtime.catalogs, out=Path(tmp) / f"p.{format}")
        except (PosterError, ValueError) as e:
            raise OpError(str(e)) from None
        return Document(path.read_bytes(), POSTER_TYPES[format])


@op("GET", "/campaigns/{name}/untranslated", name="campaign_untranslated")
def campaign_untranslated(app: App, actor: str, name: str) -> list:
    """The campaign's languages its poster leaves off (not translated yet)."""
    from admin_cli.poster import untranslated

    return untranslated(_campaign(app, actor, name).langs, app.runtime.catalogs)


@op("POST", "/campaigns/{name}/close", name="campaign_close")
def campaign_close(app: App, actor: str, name: str) -> dict:
    """Close a campaign now: the keyword then gets a polite "closed" answer."""
    _campaign(app, actor, name)
    app.service.close_campaign(name, actor)
    return {"name": name, "closed": True}

"""`tala campaign ...`: anonymous group surveys a class answers by keyword or one Telegram
link, and their posters. Registered on the `tala` command by admin_cli/main.py."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional

import typer

from admin_cli.common import allowed, built, err, fail, out

campaign_app = typer.Typer(help="Anonymous group surveys: a class answers by keyword.",
                           no_args_is_help=True)


@campaign_app.command("create")
def campaign_create(
    name: str = typer.Option(..., "--name", help="A short name, e.g. ak8-hosten-2026."),
    questionnaire: str = typer.Option("school-survey", "--questionnaire"),
    keyword: str = typer.Option(..., "--keyword", help="The word pupils text, e.g. SKOLA8."),
    unit: Optional[str] = typer.Option(None, "--unit"),
    opens: datetime = typer.Option(..., "--opens", formats=["%Y-%m-%d"]),
    closes: datetime = typer.Option(..., "--closes", formats=["%Y-%m-%d"],
                                    help="The last day it is open."),
    lang: Optional[list[str]] = typer.Option(None, "--lang", help="Languages on the poster "
                                             "and to start in (repeat: --lang sv --lang ar)."),
) -> None:
    """Start an anonymous survey: pupils text the keyword (or open the Telegram link) and
    answer with no name; results only in aggregate (tala report --campaign NAME)."""
    from bot.service import CampaignError

    with built() as a:
        user = allowed(a, "campaigns", unit=unit)
        if user is not None and user.role == "manager":
            unit = unit or user.unit
        try:
            c = a.service.create_campaign(name, questionnaire, keyword, opens.date(),
                                          closes.date(), unit=unit, langs=lang or ["sv"],
                                          actor=a.settings.user)
        except CampaignError as e:
            fail(str(e))
        out.print(f"Campaign {c.name}: text [bold]{c.keyword.upper()}[/bold]"
                  + (f" to {a.settings.twilio_from_number}" if a.settings.twilio_from_number
                     else "") + f", open {c.opens} - {c.closes}.")
        if a.settings.telegram_bot_username:
            from bot.channels.telegram import campaign_link

            out.print(f"Telegram: {campaign_link(a.settings, c.code)}")
        out.print(f"Poster: tala campaign poster {c.name} --out poster.pdf")


@campaign_app.command("list")
def campaign_list() -> None:
    """Every campaign, open or closed."""
    from rich.table import Table

    with built() as a:
        user = allowed(a, "campaigns")
        table = Table("name", "keyword", "questionnaire", "unit", "open", "state")
        for c in a.db.campaigns():
            if user is not None and user.role == "manager" and c.unit != user.unit:
                continue
            state = "closed" if c.closed_at else "open"
            table.add_row(c.name, c.keyword.upper(), c.questionnaire_id, c.unit or "",
                          f"{c.opens} - {c.closes}", state)
        out.print(table)


@campaign_app.command("poster")
def campaign_poster(
    name: str = typer.Argument(...),
    out_file: Path = typer.Option(..., "--out", help="poster.pdf or poster.png (A4)."),
) -> None:
    """An A4 poster for the classroom wall: the keyword and number, a QR code for Telegram,
    a line on anonymity, in the campaign's languages."""
    from admin_cli.poster import PosterError, make_poster, untranslated

    with built() as a:
        c = a.db.campaign(name)
        if c is None:
            fail(f"There is no campaign '{name}'. 'tala campaign list' shows them.")
        allowed(a, "campaigns", unit=c.unit)
        link = None
        if a.settings.telegram_bot_username:
            from bot.channels.telegram import campaign_link

            link = campaign_link(a.settings, c.code)
        try:
            make_poster(c, sms_number=a.settings.twilio_from_number, telegram_link=link,
                        catalogs=a.runtime.catalogs, out=out_file)
        except (PosterError, ValueError) as e:
            fail(str(e))
        missing = untranslated(c.langs, a.runtime.catalogs)
        if missing:
            err.print(f"[yellow]Left off the poster (not translated yet): "
                      f"{', '.join(missing)}.[/yellow]")
        out.print(f"Wrote {out_file}.")


@campaign_app.command("close")
def campaign_close(name: str = typer.Argument(...)) -> None:
    """Close a campaign now: the keyword then gets a polite "closed" answer."""
    with built() as a:
        c = a.db.campaign(name)
        if c is None:
            fail(f"There is no campaign '{name}'. 'tala campaign list' shows them.")
        allowed(a, "campaigns", unit=c.unit)
        a.service.close_campaign(name, a.settings.user)
        out.print(f"Campaign {name} is closed.")

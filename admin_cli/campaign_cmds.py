"""`tala campaign ...`: anonymous group surveys a class answers by keyword or one Telegram
link, and their posters. Registered on the `tala` command by admin_cli/main.py."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional

import typer

from admin_cli.common import call, err, fail, out

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
    c = call("campaign_create", name=name, questionnaire=questionnaire, keyword=keyword,
             unit=unit, opens=opens.date(), closes=closes.date(), lang=lang or None)
    out.print(f"Campaign {c['name']}: text [bold]{c['keyword']}[/bold]"
              + (f" to {c['sms_number']}" if c["sms_number"] else "")
              + f", open {c['opens']} - {c['closes']}.")
    if c["telegram"]:
        out.print(f"Telegram: {c['telegram']}")
    out.print(f"Poster: tala campaign poster {c['name']} --out poster.pdf")


@campaign_app.command("list")
def campaign_list() -> None:
    """Every campaign, open or closed."""
    from rich.table import Table

    table = Table("name", "keyword", "questionnaire", "unit", "open", "state")
    for c in call("campaign_list"):
        table.add_row(c["name"], c["keyword"], c["questionnaire"], c["unit"] or "",
                      f"{c['opens']} - {c['closes']}", "closed" if c["closed"] else "open")
    out.print(table)


@campaign_app.command("poster")
def campaign_poster(
    name: str = typer.Argument(...),
    out_file: Path = typer.Option(..., "--out", help="poster.pdf or poster.png (A4)."),
) -> None:
    """An A4 poster for the classroom wall: the keyword and number, a QR code for Telegram,
    a line on anonymity, in the campaign's languages."""
    suffix = out_file.suffix.lower().lstrip(".")
    if suffix not in ("pdf", "png"):
        fail(f"The poster is a PDF or a PNG: --out {out_file.stem}.pdf")
    doc = call("campaign_poster", name=name, format=suffix)
    out_file.write_bytes(doc.content)
    missing = call("campaign_untranslated", name=name)
    if missing:
        err.print(f"[yellow]Left off the poster (not translated yet): "
                  f"{', '.join(missing)}.[/yellow]")
    out.print(f"Wrote {out_file}.")


@campaign_app.command("close")
def campaign_close(name: str = typer.Argument(...)) -> None:
    """Close a campaign now: the keyword then gets a polite "closed" answer."""
    call("campaign_close", name=name)
    out.print(f"Campaign {name} is closed.")

"""`tala flows ...`: check the questionnaires, what they cost by SMS, and how the safeguarding
phrases do on a corpus. Registered on the `tala` command by admin_cli/main.py; only Typer and
Rich at import."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from admin_cli.common import err, out
from admin_cli.i18n import _, ngettext

flows_app = typer.Typer(help=_("Frågeformulär."), no_args_is_help=True)


@flows_app.command("check", help=_("Kontrollera frågeformulär: id, mål, typer, villkor, att "
                                   "varje fråga nås, slingor."))
def flows_check(
    paths: Optional[list[Path]] = typer.Argument(None, help=_(
        "Filerna som ska kontrolleras (förvalt: alla frågeformulär som följer med).")),
) -> None:
    from flows.model import BUILTIN_DIR, QuestionnaireError, load_dir, load_file

    try:
        if paths:
            found = {}
            problems: list[str] = []
            for p in paths:
                try:
                    q = load_file(p)
                    found[q.id] = q
                except QuestionnaireError as e:
                    problems += e.problems
            if problems:
                raise QuestionnaireError(problems)
        else:
            found = load_dir(BUILTIN_DIR)
    except QuestionnaireError as e:
        for line in e.problems:
            err.print(f"[red]✗[/red] {line}")
        raise typer.Exit(1) from None
    for q in found.values():
        mains = ngettext("{n} huvudfråga", "{n} huvudfrågor", len(q.main_questions)).format(
            n=len(q.main_questions))
        out.print("[green]✓[/green] " + _(
            "{source}: {id} v{version}, åldrar {min}-{max}, {mains}, {n} totalt").format(
            source=q.source, id=q.id, version=q.version, min=q.min_age, max=q.max_age,
            mains=mains, n=len(q.questions)))


@flows_app.command("cost", help=_(
    "Vad varje frågeformulär kostar med sms, per språk: den kortaste och den längsta vägen "
    "genom det, i riktiga segment (GSM-7 160/153, UCS-2 70/67 tecken); hur många "
    "WhatsApp-meddelanden det blir; och webbchattens enda sms, det med länken."))
def flows_cost() -> None:
    from rich.table import Table

    from admin_cli.cost import cost
    from bot.settings import Settings
    from flows.engine import Runtime, SafetyLexicon
    from flows.i18n import Catalogs
    from flows.model import BUILTIN_DIR, load_dir

    rt = Runtime(Catalogs.load(), SafetyLexicon.load())
    settings = Settings()
    sender = settings.sender_name
    from rich.table import Column

    table = Table(Column(_("frågeformulär"), no_wrap=True), _("språk"), _("kortaste vägen"),
                  _("längsta vägen"), _("teckenkodning"), _("WhatsApp"),
                  Column(_("webbchatt"), min_width=9),
                  title=_("Sms-segment (separata meddelanden) som skickas, från inbjudan till "
                          "slutet"))
    for qn in load_dir(BUILTIN_DIR).values():
        for lang in rt.catalogs.languages:
            c = cost(rt, qn, lang, sender, settings.public_url)
            table.add_row(qn.id, lang, f"{c.shortest.segments} ({c.shortest.messages})",
                          f"{c.longest.segments} ({c.longest.messages})", c.longest.encoding,
                          str(c.whatsapp), str(c.web))
    out.print(table)
    out.print(_("WhatsApp: meddelanden längs den längsta vägen. Bara inbjudan betalas (en mall); "
                "svaren går inom de 24 timmar som barnets meddelande öppnar och kostar inget. En "
                "påminnelse efter 24 timmar går som sms."))
    out.print(_("Webbchatt: sms-segmenten i det enda sms:et, inbjudan med länken. Svaren går på "
                "sidan och kostar inga sms; en påminnelse går som sms med länken igen."))


@flows_app.command("safety-check", help=_(
    "Hur skyddsfraserna fungerar på en korpus: träffsäkerhet och falsklarm per språk, och "
    "träffsäkerhet per ämne. Misslyckas (kod 1) under målen (95 % för sv och en, 85 % för de "
    "andra; högst 5 % falsklarm)."))
def flows_safety_check(
    corpus: Optional[list[Path]] = typer.Argument(None, help=_(
        "Korpusfiler (förvalt: tests/safety_corpus/dev.yaml och heldout.yaml).")),
    show: bool = typer.Option(False, "--show", help=_(
        "Visa meningarna som missades och de ofarliga som larmade.")),
) -> None:
    from rich.table import Table

    from flows.safeguarding import CORPUS_DIR, SafetyLexicon, evaluate

    lex = SafetyLexicon.load()
    review = {lang.lang: lang.review for lang in lex.languages}
    failed = False
    for path in corpus or [CORPUS_DIR / "dev.yaml", CORPUS_DIR / "heldout.yaml"]:
        scores = evaluate(lex, path)
        table = Table(_("språk"), _("granskning"), _("träffsäkerhet"), _("mål"),
                      _("rätt ämne"), _("falsklarm"),
                      title=_("{file}: larm på meningar om skada / på ofarliga").format(
                          file=path.name))
        for sc in scores:
            failed |= not sc.ok
            table.add_row(sc.lang, review.get(sc.lang, _("ingen")),
                          f"{sc.recall:.0%} ({sc.found}/{sc.harm})", f"{sc.target:.0%}",
                          f"{sc.right_topic}/{sc.harm}",
                          f"{sc.false_alarm_rate:.0%} ({sc.false_alarms}/{sc.harmless})",
                          style=None if sc.ok else "red")
        out.print(table)
        by_topic = Table(_("ämne"), *(sc.lang for sc in scores),
                         title=_("{file}: meningar om skada som larmade, per ämne").format(
                             file=path.name))
        for topic, __ in lex.topics:
            by_topic.add_row(topic, *(f"{sc.by_topic[topic][0]}/{sc.by_topic[topic][1]}"
                                      if topic in sc.by_topic else "-" for sc in scores))
        out.print(by_topic)
        if show:
            for sc in scores:
                for text in sc.missed:
                    out.print("  " + _("{lang} missade: {text}").format(lang=sc.lang,
                                                                       text=text))
                for text in sc.alarmed:
                    out.print("  " + _("{lang} falsklarm: {text}").format(lang=sc.lang,
                                                                         text=text))
    if failed:
        err.print("[red]✗[/red] " + _("under målet"))
        raise typer.Exit(1)

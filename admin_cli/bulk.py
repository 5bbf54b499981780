"""`tala invite --from-csv FILE`: invite a class or a unit by SMS in one go.

The rows are invited by `start` wherever the data is (here, or on the server after `tala
login`); the text messages are then sent here at the configured rate, or by the server's
worker while this follows them. Each row gets a session id derived from the file's content
and the row, so running the same file again (after a crash, a kill, Ctrl-C) invites nobody
twice and queues nothing twice (what Twilio cannot take for a while is left to the worker,
which keeps trying). Every problem is reported with the line it came from, and the other
rows go on.
"""

from __future__ import annotations

import csv
import hashlib
import io
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from admin_cli.i18n import N_, _, ngettext, refusal_text
from admin_cli.labels import phase_problem
from bot.app import App
from bot.service import InviteError
from storage.queue import BULK, Job, SendResult

REQUIRED = ("case", "age", "to")
OPTIONAL = ("lang", "unit", "questionnaire", "caseworker", "phase")


@dataclass
class BulkReport:
    invited: int = 0
    sent: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)  # (line, what went wrong)


@dataclass
class BulkStart:
    """What inviting the rows did: the rows read, those invited, the rows that could not be,
    and the send-queue job of each invitation (job id -> line)."""

    rows: int = 0
    invited: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)
    jobs: dict[str, int] = field(default_factory=dict)


def _rows(raw: bytes, name: str) -> tuple[str, list[tuple[int, dict[str, str]]]]:
    batch = hashlib.sha256(raw).hexdigest()[:16]
    text = raw.decode("utf-8-sig")  # a BOM from Excel is fine
    dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t") if text else csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    headers = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in headers]
    if missing:
        raise InviteError(N_("{name}: första raden ska ange kolumnerna; det saknas: {missing} "
                             "(finns: {have})."), name=name, missing=", ".join(missing),
                          have=", ".join(headers) or _("inget"))
    rows = []
    for line, row in enumerate(reader, start=2):  # line 1 is the header, as in a spreadsheet
        rows.append((line, {(k or "").strip().lower(): (v or "").strip()
                            for k, v in row.items()}))
    return batch, rows


def start(app: App, raw: bytes, name: str, actor: str) -> BulkStart:
    """Invite every row (by SMS, on the bulk lane) and queue its text message."""
    began = BulkStart()
    try:
        batch, rows = _rows(raw, name)
    except (InviteError, UnicodeDecodeError, csv.Error) as e:
        began.failures.append((0, refusal_text(e)))
        return began
    began.rows = len(rows)
    for line, row in rows:
        try:
            age = int(row["age"])
        except ValueError:
            began.failures.append((line, _("åldern '{age}' är inte ett antal år").format(
                age=row["age"])))
            continue
        phase = row.get("phase") or None
        wrong_phase = phase_problem(phase)
        if wrong_phase:
            began.failures.append((line, wrong_phase))
            continue
        sid = uuid.uuid5(uuid.NAMESPACE_URL, f"tala-bulk:{batch}:{line}").hex
        try:
            app.service.invite(row["case"], age, lang=row.get("lang") or "sv", channel="sms",
                               contact=row["to"], questionnaire_id=row.get("questionnaire")
                               or None, unit=row.get("unit") or None,
                               caseworker=row.get("caseworker") or None, actor=actor,
                               session_id=sid, lane=BULK, phase=phase)
        except InviteError as e:
            began.failures.append((line, refusal_text(e)))
            continue
        began.invited += 1
        began.jobs[f"invite:{sid}:0"] = line
    return began


def job_state(app: App, job_id: str) -> dict[str, object]:
    """Where one invitation's text message is: its status and error, and whether it is left
    to the worker (put off further ahead than is worth waiting for here)."""
    job = app.queue.job(job_id)
    return {"status": job.get("status"), "error": job.get("error"),
            "left_to_worker": app.queue.left_to_worker(job)}


def settled(state: dict[str, object]) -> bool:
    return state["status"] in ("sent", "failed") or bool(state["left_to_worker"])


def report(began: BulkStart, states: dict[str, dict], console: Console) -> BulkReport:
    """The outcome by line, printed: how many were invited and sent, and every problem."""
    done = BulkReport(invited=began.invited, failures=list(began.failures))
    for job_id, line in sorted(began.jobs.items(), key=lambda kv: kv[1]):
        state = states[job_id]
        if state["status"] == "sent":
            done.sent += 1
        elif state["status"] in ("retry", "unsure"):
            done.failures.append((line, _("inte skickat än ({error}); tala serve eller tala "
                                          "worker fortsätter att försöka").format(
                error=state["error"])))
        else:
            done.failures.append((line, state["error"] or _("inte skickat")))
    done.failures.sort()
    if began.failures and began.failures[0][0] == 0:  # the file itself could not be read
        console.print(f"[red]{began.failures[0][1]}[/red]")
        return done
    console.print(ngettext("{invited} av {rows} inbjudna; {sent} sms skickat.",
                           "{invited} av {rows} inbjudna; {sent} sms skickade.", done.sent)
                  .format(invited=done.invited, rows=began.rows, sent=done.sent))
    for line, what in done.failures:
        console.print("[red]" + _("rad {line}:").format(line=line) + f"[/red] {what}")
    return done


def _progress(console: Console) -> Progress:
    return Progress(TextColumn(_("Skickar inbjudningar")), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=console)


def invite_from_csv(app: App, path: Path, actor: str, console: Console) -> BulkReport:
    """On the local data directory: invite, then send at the configured rate here."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raw, began = b"", BulkStart(failures=[(0, str(e))])
    else:
        began = start(app, raw, path.name, actor)
    if not raw or (began.failures and began.failures[0][0] == 0):
        return report(began, {}, console)
    jobs = began.jobs
    left = {j for j in jobs if app.queue.job(j).get("status") not in ("sent", "failed")}
    with _progress(console) as progress:
        task = progress.add_task("send", total=len(jobs), completed=len(jobs) - len(left))
        last_check = [time.monotonic()]

        def done(job: Job, result: SendResult) -> None:
            if job.id in left:
                left.discard(job.id)
                progress.advance(task)

        def finished() -> bool:
            # Another sender (tala serve) may be sending some of them, and a long Twilio
            # outage puts some off for longer than is worth waiting here (the worker sends
            # them): look now and then.
            if left and time.monotonic() - last_check[0] > 2:
                last_check[0] = time.monotonic()
                for j in list(left):
                    if settled(job_state(app, j)):
                        left.discard(j)
                        progress.advance(task)
            return not left

        while not finished():
            app.service.send_queued("sms", block_ms=500, stop=finished, on_result=done)
    return report(began, {j: job_state(app, j) for j in jobs}, console)


def invite_through(server: Any, path: Path, console: Console,
                   poll: float = 1.0) -> BulkReport:
    """After `tala login`: the server invites and its worker sends; this follows the sending
    until every message is sent, failed or left to the worker, and reports the same."""
    from admin_cli.ops import registry

    ops = registry()
    try:
        raw = path.read_bytes()
    except OSError as e:
        return report(BulkStart(failures=[(0, str(e))]), {}, console)
    answer = server.call(ops["invite_bulk"], {"csv": raw.decode("utf-8", "replace"),
                                              "name": path.name})
    began = BulkStart(answer["rows"], answer["invited"],
                      [tuple(f) for f in answer["failures"]], answer["jobs"])
    states: dict[str, dict] = {}
    with _progress(console) as progress:
        task = progress.add_task("send", total=len(began.jobs))
        while True:
            states = server.call(ops["invite_bulk_jobs"], {"jobs": list(began.jobs)})
            progress.update(task, completed=sum(settled(s) for s in states.values()))
            if all(settled(s) for s in states.values()):
                break
            time.sleep(poll)  # the server sends at its own rate: look again in a while
    return report(began, states, console)

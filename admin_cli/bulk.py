"""`tala invite --from-csv FILE`: invite a class or a unit by SMS in one go.

Each row gets a session id derived from the file's content and the row, so running the same
file again (after a crash, a kill, Ctrl-C) invites nobody twice and queues nothing twice; the
send queue then sends what is left at the configured rate (what Twilio cannot take for a
while is left to the worker, which keeps trying). Every problem is reported with the line it
came from, and the other rows go on.
"""

from __future__ import annotations

import csv
import hashlib
import io
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bot.app import App
from bot.service import InviteError
from storage.queue import BULK, Job, SendResult

REQUIRED = ("case", "age", "to")
OPTIONAL = ("lang", "unit", "questionnaire", "caseworker")


@dataclass
class BulkReport:
    invited: int = 0
    sent: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)  # (line, what went wrong)


def _rows(path: Path) -> tuple[str, list[tuple[int, dict[str, str]]]]:
    raw = path.read_bytes()
    batch = hashlib.sha256(raw).hexdigest()[:16]
    text = raw.decode("utf-8-sig")  # a BOM from Excel is fine
    dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t") if text else csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    headers = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in headers]
    if missing:
        raise InviteError(f"{path.name}: the first line must name the columns; missing: "
                          f"{', '.join(missing)} (have: {', '.join(headers) or 'nothing'}).")
    rows = []
    for line, row in enumerate(reader, start=2):  # line 1 is the header, as in a spreadsheet
        rows.append((line, {(k or "").strip().lower(): (v or "").strip()
                            for k, v in row.items()}))
    return batch, rows


def invite_from_csv(app: App, path: Path, actor: str, console: Console) -> BulkReport:
    report = BulkReport()
    try:
        batch, rows = _rows(path)
    except (InviteError, OSError, UnicodeDecodeError, csv.Error) as e:
        report.failures.append((0, str(e)))
        console.print(f"[red]{e}[/red]")
        return report
    jobs: dict[str, int] = {}  # job id -> line
    for line, row in rows:
        try:
            age = int(row["age"])
        except ValueError:
            report.failures.append((line, f"age '{row['age']}' is not a number of years"))
            continue
        sid = uuid.uuid5(uuid.NAMESPACE_URL, f"tala-bulk:{batch}:{line}").hex
        try:
            app.service.invite(row["case"], age, lang=row.get("lang") or "sv", channel="sms",
                               contact=row["to"], questionnaire_id=row.get("questionnaire")
                               or None, unit=row.get("unit") or None,
                               caseworker=row.get("caseworker") or None, actor=actor,
                               session_id=sid, lane=BULK)
        except InviteError as e:
            report.failures.append((line, str(e)))
            continue
        report.invited += 1
        jobs[f"invite:{sid}:0"] = line

    left = {j for j in jobs if app.queue.job(j).get("status") not in ("sent", "failed")}
    with Progress(TextColumn("Sending invitations"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console) as progress:
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
                    job = app.queue.job(j)
                    if job.get("status") in ("sent", "failed") or app.queue.left_to_worker(job):
                        left.discard(j)
                        progress.advance(task)
            return not left

        while not finished():
            app.service.send_queued("sms", block_ms=500, stop=finished, on_result=done)

    for job_id, line in sorted(jobs.items(), key=lambda kv: kv[1]):
        job = app.queue.job(job_id)
        if job.get("status") == "sent":
            report.sent += 1
        elif job.get("status") in ("retry", "unsure"):
            report.failures.append((line, f"not sent yet ({job.get('error')}); tala serve or "
                                          "tala worker keeps trying"))
        else:
            report.failures.append((line, job.get("error") or "not sent"))
    report.failures.sort()
    console.print(f"Invited {report.invited} of {len(rows)}; {report.sent} text messages sent.")
    for line, what in report.failures:
        console.print(f"[red]line {line}:[/red] {what}")
    return report

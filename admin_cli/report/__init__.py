"""The managers' reports: anonymised, aggregated participation and answers per unit and
period (build_report), an anonymous survey's results (build_campaign_report), and the unit's
monthly indicators per case phase (build_indicators). Queries (queries.py, and each report's
own SQL), the numbers built from them (build.py, campaign.py, indicators.py) and the renderers
(render.py: text, JSON, CSV; html.py with templates/report.html) live apart.

What the group report counts
----------------------------
Who took part, overall and per unit, caseworker, age band and language; and for every
question with fixed answers (yes/no, scale, choice, multiple choice) how many children gave
each answer. Never free text, never a case.

- Invited: children with an invitation in the period. A child counts once per unit, quarter
  and questionnaire (invited twice in a quarter: once, by the furthest they got).
- Started: a session is stored for the invitation (completed, stopped, or expired part-way),
  or the invitation's status says so. Completed: the session (or invitation) is completed.
  Share who answered: completed / invited, from the exact counts.
- Unit and caseworker are the child's as recorded now; the age band (6-11, 12-18) is the
  invitation's year minus the birth year; the language is the invitation's.
- Answers: the current, not skipped answers of each child's latest started session in the
  quarter (stopped and expired sessions count with what the child did answer).

How no child can be singled out
-------------------------------
`min_group` (TALA_MIN_GROUP_SIZE, 5 by default) is the smallest group any number may describe.

1. Whole quarters. `since` and `until` are widened to whole calendar quarters (local time).
2. Fixed blocks of at least `min_group` children: one unit, one quarter, one questionnaire.
   A unit with fewer children in a block is counted with the other small units as "Övriga
   enheter", or left out when they are still too few together. A report only adds up whole
   blocks, the same whatever the filters, so two reports always differ by whole blocks of at
   least `min_group` children, never by one child; a report with no block says "too few".
3. Groups inside a report. Caseworkers, age bands and languages with at least `min_group`
   children in the report have a row of their own; the rest share one row named by the rule
   ("Språk med färre än 5 barn"), with the next smallest group added when that row would be
   too small. The rows always add up to the total.
4. Exact counts, small ones hidden (protect.hidden_cells). No count of 1 to min_group-1 is
   shown. In every line of counts that add up to a sum the reader sees (a row's levels to its
   invited, a table's rows to the total, a question's answers to those who answered; for
   multiple choice, chosen and not chosen), the hidden counts are none or at least two that
   together hold at least `min_group`: the next smallest count is hidden too where needed
   (complementary suppression), so no hidden count is a sum minus the counts shown. A share
   is computed from exact counts and shown only for a group of at least `min_group` whose
   count is shown. A question fewer than `min_group` children answered shows no number.
5. Every report is written to the audit log, with its filters.

What it does not guarantee. Two reports with different filters differ by whole blocks of at
least `min_group` children, and within such a difference a count may be smaller than
`min_group` (a year minus three quarters shows the fourth quarter's counts, unhidden where the
year showed them). That says something about a group of at least `min_group` children, never
one child's answer unless all of the group answered alike, which a report may say of a group.
A report made before and one after the data changed (a late answer, an erased case) can
differ by one child: publish reports for closed quarters.
"""

from admin_cli.report.build import ReportError, build_report
from admin_cli.report.campaign import build_campaign_report
from admin_cli.report.html import to_html
from admin_cli.report.indicators import build_indicators
from admin_cli.report.indicators_out import indicators_csv, indicators_json, indicators_text
from admin_cli.report.render import cell_key, cells, numbers, render_text, to_csv, to_json
from admin_cli.report.texts import BREAKDOWNS

__all__ = ["BREAKDOWNS", "ReportError", "build_campaign_report", "build_indicators",
           "build_report", "cell_key", "cells", "indicators_csv", "indicators_json",
           "indicators_text", "numbers", "render_text", "to_csv", "to_html", "to_json"]

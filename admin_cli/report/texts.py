"""What a manager reads in a report, in Swedish (msgids of the tala-staff domain): titles are
marked with N_ here and translated where they are shown."""

from __future__ import annotations

from admin_cli.i18n import N_, _

HIDDEN = "–"  # a count or share not shown (the notes say why)
BREAKDOWNS = ("unit", "caseworker", "age_band", "language")
BREAKDOWN_TITLES = {"total": N_("Totalt"), "unit": N_("Per enhet"),
                    "caseworker": N_("Per handläggare"), "age_band": N_("Per åldersgrupp"),
                    "language": N_("Per språk")}
# The pooled row of a breakdown, named by its rule ({n}: the smallest group shown alone).
OTHER_TITLES = {"unit": N_("Övriga enheter"),
                "caseworker": N_("Handläggare med färre än {n} barn"),
                "age_band": N_("Åldrar med färre än {n} barn"),
                "language": N_("Språk med färre än {n} barn")}
MEASURE_TITLES = {"invited": N_("Inbjudna"), "started": N_("Påbörjade"),
                  "completed": N_("Klara"), "share_percent": N_("Andel som svarade")}
CAMPAIGN_TITLES = {"started": N_("Påbörjade"), "completed": N_("Klara"),
                   "share_percent": N_("Andel klara")}
FLAGGED_TITLE = N_("Antal svar som visade att någon kan behöva hjälp")
AGE_BANDS = {"6-11": N_("6-11 år"), "12-18": N_("12-18 år"), "other": N_("annan ålder"),
             "unknown": N_("okänd ålder")}


def other_title(dim: str, min_group: int) -> str:
    return _(OTHER_TITLES[dim]).format(n=min_group)


def hidden_note(min_group: int) -> str:
    return _("{mark} betyder att antalet eller andelen inte visas: antalet är färre än {n}, "
             "eller döljs för att ett sådant antal annars skulle kunna räknas fram ur "
             "summan och de andra antalen.").format(mark=HIDDEN, n=min_group)


def suppression_note(min_group: int) -> str:
    return _("Alla antal är exakta. Ett antal från 1 till {m} visas aldrig. Där ett dolt antal "
             "annars skulle kunna räknas fram ur en summa döljs också det minsta antalet "
             "bredvid, så att de dolda antalen i varje rad och kolumn tillsammans är minst "
             "{n}. Andelar räknas på de exakta antalen och visas bara för grupper med minst "
             "{n}.").format(m=min_group - 1, n=min_group)

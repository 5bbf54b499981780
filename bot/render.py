"""A message to a child as plain text: the question, its choices numbered, then how to answer.
The console shows it as it is; SMS and Telegram lay it out from the same text."""

from __future__ import annotations

from flows.engine import LANGUAGE_PROMPT, RLM, Prompt, Say, rtl_line

SMILEYS = {"1": "😢", "2": "🙁", "3": "😐", "4": "🙂", "5": "😄"}  # where there are buttons


def face(p: Prompt, key: str) -> str | None:
    """The smiley for a choice of a 1-5 scale (on a button: Telegram, the web chat)."""
    if p.question_id == LANGUAGE_PROMPT or [k for k, _ in p.choices] != list(SMILEYS):
        return None
    return SMILEYS.get(key)


def render_prompt(p: Prompt) -> str:
    lines = [p.text]
    lines += [rtl_line(f"{key}. {label.lstrip(RLM)}") if p.rtl else f"{key}. {label}"
              for key, label in p.choices]
    if p.hint:
        lines.append(p.hint)
    return "\n".join(lines)


def render(say: Say) -> str:
    return render_prompt(say.prompt) if say.prompt else say.text

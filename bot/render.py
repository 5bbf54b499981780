"""A message to a child as plain text: the question, its choices numbered, then how to answer.
The console shows it as it is; SMS and Telegram lay it out from the same text."""

from __future__ import annotations

from flows.engine import RLM, Prompt, Say, rtl_line


def render_prompt(p: Prompt) -> str:
    lines = [p.text]
    lines += [rtl_line(f"{key}. {label.lstrip(RLM)}") if p.rtl else f"{key}. {label}"
              for key, label in p.choices]
    if p.hint:
        lines.append(p.hint)
    return "\n".join(lines)


def render(say: Say) -> str:
    return render_prompt(say.prompt) if say.prompt else say.text

"""The email templates staff can edit: one file per template and language, `<name>.<language>.txt`.

The bundled folder (`handlers/mail_out/templates/`) has all of them; `TEMPLATES_DIR` names a folder
whose files replace the bundled file of the same name. Templates use `string.Template`'s syntax
(`$name`, `${name}`, `$$` for a dollar sign), so nothing in them is executed. Every template is
checked when the bot starts: a variable the template may not use, a `$` that starts no variable,
a file that is not a known template or language, or a file that is not UTF-8 is refused with the
file and line (`TemplateError`), before any mail can be written with it.
"""

from __future__ import annotations

import re
import string
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AUTOMATIC",
    "BUNDLED_DIR",
    "LANGUAGES",
    "OFFERED",
    "TEMPLATE_NAMES",
    "VARIABLES",
    "TemplateError",
    "Templates",
]

BUNDLED_DIR = Path(__file__).with_name("templates")
LANGUAGES = ("en", "fr", "nl", "de")

#: What every template may use.
COMMON = frozenset(
    {"greeting", "name", "case_ref", "received_date", "due_date", "request", "privacy_address"}
)
#: Each template and the variables it may use (the review acknowledgement does not name the right).
VARIABLES: Mapping[str, frozenset[str]] = {
    "acknowledgement": COMMON,
    "acknowledgement_review": COMMON - {"request"},
    "identity_request": COMMON,
    "clarification_request": COMMON,
    "extension_notice": COMMON | {"extension_reason"},
    "answer": COMMON,
    "refusal": COMMON,
}
TEMPLATE_NAMES = tuple(VARIABLES)
#: Sent by the bot on its own when a case opens.
AUTOMATIC = ("acknowledgement", "acknowledgement_review")
#: Offered, prefilled, in the Reply modal (in this order), with how staff see them.
OFFERED = {
    "identity_request": "Identity request",
    "clarification_request": "Clarification request",
    "extension_notice": "Extension notice",
    "answer": "Answer with the result",
    "refusal": "Refusal, with the right to complain",
}


class TemplateError(ValueError):
    """A template that cannot be used, with where: `path:line: problem`."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        self.path, self.line, self.problem = path, line, problem
        super().__init__(f"{path}:{line}: {problem}" if line else f"{path}: {problem}")


@dataclass(frozen=True, slots=True)
class _Loaded:
    template: string.Template
    path: Path


class Templates:
    """Every template in every language, checked; `render` fills one in."""

    def __init__(self, loaded: Mapping[tuple[str, str], _Loaded]) -> None:
        self._loaded = dict(loaded)

    @classmethod
    def load(cls, override: Path | None = None) -> Templates:
        """The bundled templates, each replaced by the file of the same name in `override` when
        there is one. Raises `TemplateError` for the first problem found."""
        files = {p.name: p for p in sorted(BUNDLED_DIR.glob("*.txt"))}
        if override is not None:
            if not override.is_dir():
                raise TemplateError(override, 0, "not a folder")
            for path in sorted(override.iterdir()):
                if path.name.startswith(".") or path.suffix != ".txt" or not path.is_file():
                    continue  # a README, an editor's backup: not a template
                files[path.name] = path
        loaded: dict[tuple[str, str], _Loaded] = {}
        for file_name, path in files.items():
            name, _, language = file_name.removesuffix(".txt").rpartition(".")
            if name not in VARIABLES or language not in LANGUAGES:
                raise TemplateError(
                    path,
                    0,
                    f"not a known template: the names are {', '.join(TEMPLATE_NAMES)}, "
                    f"each as <name>.<{'|'.join(LANGUAGES)}>.txt",
                )
            loaded[(name, language)] = _Loaded(_checked(path, VARIABLES[name]), path)
        missing = [f"{n}.{lang}.txt" for n in TEMPLATE_NAMES for lang in LANGUAGES if (n, lang) not in loaded]
        if missing:
            raise TemplateError(BUNDLED_DIR, 0, f"templates missing: {', '.join(missing)}")
        return cls(loaded)

    def render(self, name: str, language: str, variables: Mapping[str, str]) -> str:
        """The template in that language (English when there is none) with its variables filled in."""
        loaded = self._loaded.get((name, language)) or self._loaded[(name, "en")]
        values = {k: variables.get(k, "") for k in VARIABLES[name]}
        return _rewrapped(loaded.template.substitute(values).strip()) + "\n"

    def path(self, name: str, language: str) -> Path:
        """The file a template was read from."""
        return self._loaded[(name, language)].path


WIDTH = 76
_LISTED = re.compile(r"^\s*(?:[-*•>]|\d+[.)])\s|^\s")


def _rewrapped(text: str) -> str:
    """Paragraphs that a filled-in variable made longer than `WIDTH` wrapped again (mail is read
    at 78 columns); lists, indented and quoted lines are left as written."""
    paragraphs = text.split("\n\n")
    for i, paragraph in enumerate(paragraphs):
        lines = paragraph.split("\n")
        if all(len(line) <= WIDTH for line in lines) or any(_LISTED.match(line) for line in lines):
            continue
        paragraphs[i] = textwrap.fill(
            " ".join(lines), width=WIDTH, break_long_words=False, break_on_hyphens=False
        )
    return "\n\n".join(paragraphs)


def _checked(path: Path, allowed: frozenset[str]) -> string.Template:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise TemplateError(path, line, "not UTF-8 text") from None
    except OSError as e:
        raise TemplateError(path, 0, f"cannot be read ({e.strerror or type(e).__name__})") from None
    if not text.strip():
        raise TemplateError(path, 1, "empty")
    template = string.Template(text)
    for match in template.pattern.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        if match.group("invalid") is not None:
            raise TemplateError(path, line, "a $ that starts no variable (write $$ for a dollar sign)")
        name = match.group("named") or match.group("braced")
        if name is not None and name not in allowed:
            raise TemplateError(
                path, line, f"unknown variable ${name} (this template may use: {', '.join(sorted(allowed))})"
            )
    return template

"""Command-line options made from a Python function's signature and numpy-style docstring.

Each subcommand takes the options of the function it runs, so the two cannot drift apart:
``fit_surrogate(max_epochs=60)`` is ``grids fit --max-epochs 60``, ``n_steps`` is
``--n-steps``, a ``bool`` is ``--name``/``--no-name``, ``None`` is passed as ``none``, and a
sequence takes several values. The help text is the parameter's docstring entry.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Callable, Iterable

_SECTION = re.compile(r"^(\w[\w ]*)\n-{3,}\n", re.M)
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data):`~?([^`]+)`")
_DOC_ROLE = re.compile(r":(?:ref|doc):`([^`]+)`")  # a page or section of the documentation


class CLIError(Exception):
    """A problem with the command line or its input, reported as one line."""


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one ``grids: error: ...`` line."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        hint = f" (see '{self.prog} --help')"
        self.exit(2, f"grids: error: {one_line(message)}{hint}\n")


def one_line(text: str) -> str:
    """Collapse whitespace, so a message is one line."""
    return " ".join(str(text).split())


def _role_text(match: re.Match) -> str:
    target = match.group(1)
    return target.rsplit(".", 1)[-1] if "~" in match.group(0) else target


def plain(text: str) -> str:
    """Plain text from reST markup: ``x`` and :func:`~a.b` become x and b; :ref:`name`
    and :doc:`/name` become "the documentation's name".
    """
    text = _ROLE.sub(_role_text, text)
    text = _DOC_ROLE.sub(lambda m: f"the documentation's {m.group(1).strip('/')!r}", text)
    return text.replace("``", "").replace("%", "%%")


def parameter_docs(func: Callable) -> dict[str, str]:
    """The ``Parameters`` entries of a numpy-style docstring, one paragraph per name."""
    doc = inspect.getdoc(func) or ""
    sections = list(_SECTION.finditer(doc))
    body = ""
    for i, m in enumerate(sections):
        if m.group(1).strip() == "Parameters":
            end = sections[i + 1].start() if i + 1 < len(sections) else len(doc)
            body = doc[m.end() : end]
    out: dict[str, str] = {}
    names: list[str] = []
    for line in body.splitlines():
        if line and not line[0].isspace():
            names = [n.strip().lstrip("*") for n in line.split(",")]
            for n in names:
                out[n] = ""
        elif names:
            for n in names:
                out[n] = (out[n] + " " + line.strip()).strip()
    return out


def _resolve_as_in(docs: dict[str, str], name: str) -> str:
    """Follow 'As in :func:`~grids_sc.tl.explain`' to that function's entry."""
    text = docs.get(name, "")
    m = re.match(r"As in :func:`~?grids_sc\.tl\.(\w+)`", text)
    if m:
        from .. import tl

        other = parameter_docs(getattr(tl, m.group(1))).get(name)
        if other:
            rest = text[m.end() :].lstrip(" .")
            return other + (f" {rest}" if rest and not rest.startswith("(") else "")
    return text


def _converter(base: type) -> Callable[[str], object]:
    def convert(text: str):
        if text.lower() == "none":
            return None
        try:
            return base(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {base.__name__} or 'none', got {text!r}"
            ) from None

    convert.__name__ = base.__name__
    return convert


def _bool(text: str) -> bool:
    """``true``/``false`` (also ``yes``/``no``, ``on``/``off``, ``1``/``0``) as a bool."""
    value = {"true": True, "yes": True, "on": True, "1": True,
             "false": False, "no": False, "off": False, "0": False}.get(text.lower())  # fmt: skip
    if value is None:
        raise ValueError(text)
    return value


_bool.__name__ = "bool"


def _number_or_word(word: str) -> Callable[[str], object]:
    """A whole number, or the word that is the default (``window="auto"``)."""

    def convert(text: str):
        return word if text == word else int(text)

    convert.__name__ = f"int or {word!r}"
    return convert


def _base_type(annotation: str, default) -> Callable[[str], object]:
    if isinstance(default, str) and re.search(r"\bint\b", annotation):
        return _number_or_word(default)
    if default is not None and not isinstance(default, bool):
        return type(default)
    if re.search(r"\bbool\b", annotation):
        return _bool
    for name, t in (("int", int), ("float", float)):
        if re.search(rf"\b{name}\b", annotation):
            return t
    return str


def add_function_options(
    parser: argparse.ArgumentParser,
    func: Callable,
    *,
    skip: Iterable[str] = (),
    choices: dict[str, Iterable[str]] | None = None,
    docs: dict[str, str] | None = None,
    title: str | None = None,
) -> list[str]:
    """Add an option for every keyword parameter of ``func`` not in ``skip``.

    Returns the parameter names added (the ``dest`` of each option).
    """
    skip = set(skip) | {"mdata", "data", "copy", "progress"}
    choices = choices or {}
    docs = docs or parameter_docs(func)
    if title is None:
        parts = [p for p in func.__module__.split(".")[1:] if not p.startswith("_")]
        title = f"options of grids.{'.'.join([*parts, func.__name__])}"
    group = parser.add_argument_group(title)
    added = []
    for name, p in inspect.signature(func).parameters.items():
        if name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        annotation = str(p.annotation)
        default = None if p.default is inspect.Parameter.empty else p.default
        flags = [f"--{name.replace('_', '-')}"]
        if len(name) == 1:
            flags.append(f"-{name}")
        text = plain(_resolve_as_in(docs, name))
        kwargs: dict = {"dest": name, "default": default}
        says_default = "default" in text.lower()
        if isinstance(default, bool) or annotation == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
            text += "" if says_default else f" (default: {'on' if default else 'off'})"
        else:
            base = _base_type(annotation, default)
            kwargs["type"] = _converter(base) if "None" in annotation else base
            kwargs["metavar"] = name.upper()
            if "Sequence" in annotation:
                kwargs["nargs"] = "+"
            if name in choices:
                kwargs["choices"] = list(choices[name])
                if "nargs" in kwargs:  # name the choices once, not once per repeat
                    text += f" (one or more of: {', '.join(kwargs['choices'])})"
                else:
                    kwargs.pop("metavar")
            if p.default is inspect.Parameter.empty:
                kwargs["required"] = True
            elif not says_default:
                if default is not None:
                    text += f" (default: {default})"
                elif "None" in annotation and "Sequence" not in annotation:
                    text += " (default: none)"
        group.add_argument(*flags, help=text, **kwargs)
        added.append(name)
    return added


def function_kwargs(args: argparse.Namespace, names: Iterable[str]) -> dict:
    """The parsed values of the options ``add_function_options`` added."""
    return {n: getattr(args, n) for n in names}


def parse_param(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` to ``(name, value)``, the value as int, float, bool or str."""
    name, sep, raw = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    value: object = raw
    low = raw.lower()
    if low in ("true", "false"):
        value = low == "true"
    else:
        for t in (int, float):
            try:
                value = t(raw)
                break
            except ValueError:
                continue
    return name, value


def parse_gene_set(text: str) -> tuple[str, list[str]]:
    """``NAME=GENE1,GENE2`` to ``(name, [genes])``."""
    name, sep, raw = text.partition("=")
    genes = [g.strip() for g in raw.split(",") if g.strip()]
    if not sep or not name.strip() or not genes:
        raise argparse.ArgumentTypeError(f"expected NAME=GENE1,GENE2,..., got {text!r}")
    return name.strip(), genes


def stderr_writer(quiet: bool) -> Callable[[str], None]:
    """A function printing ``grids: message`` to stderr unless ``quiet``."""

    def say(message: str) -> None:
        if not quiet:
            print(f"grids: {message}", file=sys.stderr, flush=True)

    return say


def add_table_option(p: argparse.ArgumentParser) -> None:
    """``-t/--table PATH``: where a command writes its table (``-``: standard output)."""
    p.add_argument(
        "-t",
        "--table",
        default="-",
        metavar="PATH",
        help="write the table here: comma-separated for a .csv suffix, else tab-separated "
        "(default: tab-separated to stdout)",
    )

"""The README's command list and the `sculpt` CLI (typer) name the same commands and options."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from sculptsvc.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> dict[str, set[str]]:
    """``{command: options}`` from the code block under ``## Commands`` (continuation lines
    start with spaces and belong to the command above them)."""
    section = README.read_text().split("## Commands", 1)[1]
    block = section.split("```", 2)[1]
    commands: dict[str, set[str]] = {}
    current = ""
    for line in block.splitlines():
        text = line.split("#", 1)[0] if "  #" in line else line
        match = re.match(r"sculpt (\w+)(?: (\w+))?", text)
        if match:
            group, sub = match.groups()
            # A command group (`sculpt store init`) is listed per sub-command.
            current = f"{group} {sub}" if sub and f"{group} {sub}" in cli_commands() else group
            commands.setdefault(current, set())
        if current:
            commands[current] |= set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))
    return commands


def cli_commands() -> dict[str, tuple[set[str], list[set[str]]]]:
    """``{command: (every option spelling, [spellings of each option])}``."""
    group = typer.main.get_command(app)
    found = {}
    flat = {}
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        subcommands = getattr(command, "commands", None)
        if subcommands:  # a group: each of its commands on its own README line
            flat.update({f"{name} {sub}": c for sub, c in subcommands.items()})
        else:
            flat[name] = command
    for name, command in flat.items():
        options = [
            {o for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}
            for p in command.params
            if p.param_type_name == "option" and p.name != "help"
        ]
        found[name] = (set().union(*options) if options else set(), options)
    return found


def test_readme_lists_every_command_of_the_cli() -> None:
    assert set(readme_commands()) == set(cli_commands())


def test_readme_options_exist_and_every_option_is_listed() -> None:
    readme = readme_commands()
    for name, (spellings, options) in cli_commands().items():
        unknown = readme[name] - spellings
        assert not unknown, f"README shows options `sculpt {name}` does not have: {unknown}"
        missing = [sorted(o) for o in options if not o & readme[name]]
        assert not missing, f"README's `sculpt {name}` line lacks {missing}"

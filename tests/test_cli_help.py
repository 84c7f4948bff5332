"""Every subcommand's --help is plain text that documents each option."""

from __future__ import annotations

import argparse
import re

import pytest

from spark_harness.cli import SUBCOMMANDS, build_parser

#: Sphinx/reST markup that a terminal shows raw
REST = re.compile(r"``|:(?:func|mod|class|meth|attr):`")


def subparser(command: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser(command)._actions if a.dest == "command")
    return sub.choices[command]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_is_plain_text_and_documents_every_option(command):
    p = subparser(command)
    text = p.format_help()
    assert not REST.search(text), REST.search(text)
    undocumented = [a.option_strings for a in p._actions if a.option_strings and not a.help]
    assert undocumented == []


def test_restore_help_describes_restore_only():
    text = subparser("restore").format_help()
    assert "create" not in text and "manifest" in text

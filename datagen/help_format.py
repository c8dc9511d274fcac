"""Help that shows every option's default, for the argparse-based commands (``neuralops-datagen``,
``neuralops-data``, ``neuralops-train refine``).

:class:`DefaultsHelpFormatter` appends ``(default: X)`` to an option's help where the text does not
state a default already and the option has a value by default (not None, False or []);
:func:`show_defaults` also gives such options that have no help text a ``(default: X)`` line
(argparse prints nothing for an option without help) and sets the formatter on a parser and all
its subcommands.
"""

from __future__ import annotations

import argparse

__all__ = ["DefaultsHelpFormatter", "show_defaults"]


def _has_default(action: argparse.Action) -> bool:
    d = action.default
    return bool(action.option_strings) and d is not argparse.SUPPRESS and d is not None and d is not False and d != []


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """``(default: X)`` after the help text where it does not mention a default itself."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or not _has_default(action):
            return action.help
        return f"{text} (default: %(default)s)".strip()


def show_defaults(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``parser`` and its subcommands with :class:`DefaultsHelpFormatter`; options with a default
    but no help text get a help text (so that the default is printed). Returns ``parser``."""
    parser.formatter_class = DefaultsHelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                show_defaults(sub)
        elif action.help is None and _has_default(action):
            action.help = "(default: %(default)s)"
    return parser

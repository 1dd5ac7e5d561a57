"""How every command's --help states its defaults: "(default: X)" after each flag's help.

Train's flags take their default from the config field (their argparse default is None, so
that only what the user typed overrides a --config file); the other commands' from argparse.
"""
import argparse


class DefaultsFormatter(argparse.HelpFormatter):
    """argparse's formatter, with the flag's default appended the way `with_default` words it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        return with_default(action.help, action.default)


def with_default(help_text: str | None, default) -> str | None:
    """`help_text (default: X)`, unless the text already names its default or there is none to name."""
    if help_text is None or help_text == argparse.SUPPRESS or "default:" in help_text:
        return help_text
    if default is None or default == "" or default == argparse.SUPPRESS:
        return help_text
    return f"{help_text} (default: {describe(default)})"


def describe(value) -> str:
    """A default as a user would type or read it: on/off, 0.05, 0.485,0.456,0.406, none."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(describe(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return " ".join(f"{k}={describe(v)}" for k, v in value.items()) if value else "none"
    return str(value)

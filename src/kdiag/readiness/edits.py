"""Small in-place text edits that keep comments and unrelated settings.

Each function takes a file's text and returns the new text; applying it twice changes nothing.
"""

from __future__ import annotations

import re

__all__ = (
    "add_cmdline_token",
    "add_kdump_conf_directive",
    "set_grub_crashkernel",
    "set_kdump_conf_directive",
    "set_shell_key",
    "set_sysctl_line",
)


def _ensure_newline(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


def _logical_lines(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) line index of each logical line (backslash continuations joined)."""
    spans = []
    i = 0
    while i < len(lines):
        start = i
        while lines[i].rstrip("\n").endswith("\\") and i + 1 < len(lines):
            i += 1
        spans.append((start, i))
        i += 1
    return spans


def set_shell_key(text: str, key: str, value: str) -> str:
    """Set ``KEY="value"`` in a shell-style file: replace the last active assignment, else
    insert after a commented ``#KEY=`` example, else append."""
    lines = text.splitlines(keepends=True)
    new_line = f'{key}="{value}"\n'
    active = re.compile(rf"^\s*(export\s+)?{re.escape(key)}=")
    commented = re.compile(rf"^\s*#\s*{re.escape(key)}=")
    last_active = None
    last_comment = None
    for first, last in _logical_lines(lines):
        if active.match(lines[first]):
            last_active = (first, last)
        elif commented.match(lines[first]):
            last_comment = (first, last)
    if last_active is not None:
        first, last = last_active
        if "".join(lines[first : last + 1]) == new_line:
            return text
        lines[first : last + 1] = [new_line]
        return "".join(lines)
    if last_comment is not None:
        lines.insert(last_comment[1] + 1, new_line)
        return "".join(lines)
    return _ensure_newline(text) + new_line


def set_sysctl_line(text: str, key: str, value: str) -> str:
    """Rewrite every active assignment of ``key`` to ``value``, keeping its spacing."""
    out = []
    pattern = re.compile(rf"^(\s*-?{re.escape(key)}\s*=\s*)(\S.*?)?(\s*)$")
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        match = pattern.match(body)
        if match and match.group(2) != value:
            line = match.group(1) + value + match.group(3) + line[len(body) :]  # noqa: PLW2901
        out.append(line)
    return "".join(out)


def add_cmdline_token(value: str, token: str) -> str:
    """``value`` with ``token`` (``name=a,b`` or a flag) present; a same-named token is
    replaced."""
    name = token.split("=", 1)[0]
    words = value.split()
    kept = [w for w in words if w.split("=", 1)[0] != name]
    if token in words and len(kept) == len(words) - 1:
        return value
    return " ".join([*kept, token])


_GRUB_LINE = re.compile(r'^(\s*(?:export\s+)?)([A-Z_]+)=(["\']?)(.*?)\3(\s*(?:#.*)?)$')


def set_grub_crashkernel(text: str, key: str, value: str, *, template: str | None = None) -> str:
    """Put ``crashkernel=value`` into the ``key=`` line of a grub defaults file, replacing any
    crashkernel= there; add the line (from ``template`` or ``key="crashkernel=value"``) when
    the file has none."""
    lines = text.splitlines(keepends=True)
    last = None
    for i, line in enumerate(lines):
        match = _GRUB_LINE.match(line.rstrip("\n"))
        if match and match.group(2) == key:
            last = (i, match)
    if last is None:
        new = template if template is not None else f'{key}="crashkernel={value}"'
        return _ensure_newline(text) + new + "\n"
    i, match = last
    words = [w for w in match.group(4).split() if not w.startswith("crashkernel=")]
    words.append(f"crashkernel={value}")
    quote = match.group(3) or '"'
    body = f"{match.group(1)}{key}={quote}{' '.join(words)}{quote}{match.group(5)}"
    end = lines[i][len(lines[i].rstrip("\n")) :]
    lines[i] = body + end
    return "".join(lines)


def set_kdump_conf_directive(text: str, directive: str, rest: str) -> str:
    """Make ``directive rest`` the active value in /etc/kdump.conf: replace the last active
    line, else insert after a commented example, else append."""
    lines = text.splitlines(keepends=True)
    new_line = f"{directive} {rest}\n"
    last_active = last_comment = None
    for i, line in enumerate(lines):
        words = line.split()
        if words and words[0] == directive:
            last_active = i
        elif words and words[0].lstrip("#") == directive and words[0].startswith("#"):
            last_comment = i
    if last_active is not None:
        if lines[last_active] == new_line:
            return text
        lines[last_active] = new_line
        return "".join(lines)
    if last_comment is not None:
        lines.insert(last_comment + 1, new_line)
        return "".join(lines)
    return _ensure_newline(text) + new_line


def add_kdump_conf_directive(text: str, line: str) -> str:
    """Append ``line`` to /etc/kdump.conf unless an identical active line exists."""
    wanted = line.split()
    for existing in text.splitlines():
        if existing.split("#", 1)[0].split() == wanted:
            return text
    return _ensure_newline(text) + line + "\n"

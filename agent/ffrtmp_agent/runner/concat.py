"""Concat lists on a volume (spec.input.allowPlaylists): every file a list names, and every list it names in
turn, must be a file on the same volume that no symbolic link leads out of. ffmpeg's concat demuxer (safe
mode) already refuses absolute paths, protocols and ".." in names; links are what it cannot see.

The parser reads names as ffmpeg's av_get_token does (quotes, backslash escapes), so a name cannot mean
one thing here and another in ffmpeg. `option` directives are refused: they set the options of the opened
file, its format and protocol whitelists included.
"""

from __future__ import annotations

import os
import posixpath
import re

from .confine import Confined, open_input

HEADER = b"ffconcat version 1.0"
MAX_DEPTH = 4  # lists naming lists
MAX_BYTES = 4 * 1024 * 1024
_KEYWORD = re.compile(r"[a-z_]+")
_WHITESPACE = " \n\t\r"


def is_list(fd: int) -> bool:
    """Whether the file starts as ffmpeg's concat probe requires ("ffconcat version 1.0")."""
    return os.pread(fd, len(HEADER), 0) == HEADER


def get_token(text: str, start: int) -> tuple[str, int]:
    """av_get_token(text + start, " \\t\\r\\n"): (the token, where parsing stopped)."""
    i = start
    while i < len(text) and text[i] in _WHITESPACE:
        i += 1
    out: list[str] = []
    end = 0  # characters before this index were quoted or escaped: never trimmed
    while i < len(text) and text[i] not in " \t\r\n":
        c = text[i]
        i += 1
        if c == "\\" and i < len(text):
            out.append(text[i])
            i += 1
            end = len(out)
        elif c == "'":
            while i < len(text) and text[i] != "'":
                out.append(text[i])
                i += 1
            if i < len(text):
                i += 1
                end = len(out)
        else:
            out.append(c)
    token = "".join(out)
    kept, rest = token[:end], token[end:]
    return kept + rest.rstrip(_WHITESPACE), i


def file_names(text: str) -> list[str]:
    """The names of the list's `file` directives. Raises Confined on an `option` directive."""
    names = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.lstrip(_WHITESPACE)
        if not stripped or stripped.startswith("#"):
            continue
        keyword = _KEYWORD.match(stripped)
        word = keyword.group(0) if keyword else ""
        if word == "option":
            raise Confined(f"line {number}: 'option' directives are not allowed in a job's concat list")
        if word == "file":
            name, _ = get_token(stripped, len(word))
            names.append(name)
    return names


def check_list(path: str, fd: int, mounts: list[str], *, depth: int = 0) -> None:
    """Raises Confined unless every file the list at `path` (open as `fd`) names, and every list they
    name, stays on the volume. Names ffmpeg's safe mode refuses (absolute, with a protocol, with "..")
    are left to it: it fails the job with its own message."""
    if depth > MAX_DEPTH:
        raise Confined(f"{path}: concat lists nested more than {MAX_DEPTH} deep")
    data = os.pread(fd, MAX_BYTES + 1, 0)
    if len(data) > MAX_BYTES:
        raise Confined(f"{path}: a concat list larger than {MAX_BYTES // (1024 * 1024)} MiB")
    text = data.decode("utf-8", "replace")
    folder = posixpath.dirname(path)
    for name in file_names(text):
        if not _safe_name(name):
            continue
        target = posixpath.join(folder, name)
        try:
            entry = open_input(target, mounts)
        except Confined as exc:
            raise Confined(f"the concat list {path} names {name}: {exc}") from None
        try:
            if is_list(entry):
                check_list(target, entry, mounts, depth=depth + 1)
        finally:
            os.close(entry)


def _safe_name(name: str) -> bool:
    """ffmpeg concat's safe_filename: components of [A-Za-z0-9_-] and dots, none starting with a dot."""
    return bool(name) and all(
        part
        and (part[0].isascii() and (part[0].isalnum() or part[0] in "_-"))
        and all(c.isascii() and (c.isalnum() or c in "_-.") for c in part)
        for part in name.split("/")
    )

"""Path rules every part applies to the paths in a job: the API models (pydantic), the operator's plan
builder and the runner. A path must be absolute and in normal form, hold no control, format or whitespace
character (after percent-decoding), and lie inside a volume, checked by `os.path.commonpath` on normalised
paths, never by string prefix. Pure functions over strings: the runner adds real-path checks on disk.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

__all__ = [
    "PathError",
    "SYSTEM_DIRECTORIES",
    "bad_character",
    "containing_root",
    "file_url_path",
    "mount_path_problem",
    "normal_form_problem",
    "under",
    "within",
]

# Unicode categories refused in paths: control (Cc: NUL, newline, ESC ...), format (Cf: zero-width and
# bidi overrides, which make a path look like another) and separators (Z*: spaces of every kind).
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
# Percent-escapes refused in file:// URLs: they would change the path's structure once decoded ("%2f" is
# "/", "%2e%2e" is ".."), or decode to a control or space character. The CRD's CEL rule refuses the same.
_STRUCTURAL_ESCAPE = re.compile(r"%(?:[01][0-9a-f]|2[0ef]|5c|7f)", re.IGNORECASE)
# A job's volume may not be mounted over the directories that hold the image's (or, on a standalone node,
# the machine's) programs, libraries and configuration: a tenant's own /usr/lib or /etc/ld.so.preload
# would make ffmpeg and the runner load code of the tenant's choosing.
SYSTEM_DIRECTORIES = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/var",
)


class PathError(ValueError):
    """A path or file:// URL that a job may not use; the message says why."""


def bad_character(text: str) -> str | None:
    """The first control, format or whitespace character in `text` as U+XXXX, or None."""
    for char in text:
        if char.isspace() or unicodedata.category(char) in _REFUSED_CATEGORIES:
            return f"U+{ord(char):04X}"
    return None


def normal_form_problem(path: str) -> str | None:
    """Why `path` is not an absolute path in normal form, or None. Normal form: starts with "/", is not
    "/" itself, no empty segment ("//", trailing "/"), no "." or ".." segment, no control or whitespace."""
    if not path.startswith("/"):
        return "must be an absolute path"
    if path == "/":
        return "must not be / (it would contain every path)"
    char = bad_character(path)
    if char:
        return f"must not contain control or whitespace characters ({char})"
    if "//" in path or path.endswith("/"):
        return "must be in normal form: no empty segments (// or a trailing /)"
    if any(segment in (".", "..") for segment in path.split("/")):
        return "must be in normal form: no . or .. segments"
    return None


def mount_path_problem(path: str) -> str | None:
    """Why `path` may not be a job volume's mountPath (normal form, not over a system directory), or None."""
    problem = normal_form_problem(path)
    if problem:
        return problem
    if ":" in path:
        return "must not contain ':'"
    system = containing_root(path, SYSTEM_DIRECTORIES)
    if system:
        return f"must not be {system} or under it (a system directory)"
    return None


def file_url_path(url: str) -> str:
    """The local path a file:///... URL names, percent-decoded once (strict UTF-8). Raises PathError unless
    the URL has no host, query or fragment, no structural escape (%2f, %2e, %5c, %00-%20, %7f), and the
    decoded path is in normal form without control or whitespace characters."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "file":
        raise PathError("not a file:// URL")
    if not url.lower().startswith("file:///"):
        raise PathError("a file:// URL names no host: use file:///path")
    if "?" in url or "#" in url:
        raise PathError("must not contain '?' or '#' (percent-encode them as %3F, %23)")
    if _STRUCTURAL_ESCAPE.search(parts.path):
        raise PathError("must not percent-encode '/', '.', '\\', control or space characters")
    try:
        path = unquote(parts.path, errors="strict")
    except UnicodeDecodeError:
        raise PathError("is not valid UTF-8 once percent-decoded") from None
    problem = normal_form_problem(path)
    if problem:
        raise PathError(f"path {problem}")
    return path


def _normalised(path: str) -> str:
    # posixpath.normpath keeps a leading "//" (POSIX leaves it implementation-defined); Linux does not.
    return "/" + posixpath.normpath("/" + path).lstrip("/")


def within(path: str, root: str) -> bool:
    """Whether `path` is `root` or lies below it, compared as normalised absolute paths with
    os.path.commonpath (a string prefix would count /media2 as inside /media)."""
    if not path.startswith("/") or not root.startswith("/"):
        return False
    normal_root = _normalised(root)
    return posixpath.commonpath([_normalised(path), normal_root]) == normal_root


def under(path: str, root: str) -> bool:
    """Whether `path` lies strictly below `root` (a file in a volume, not the mount point itself)."""
    return within(path, root) and _normalised(path) != _normalised(root)


def containing_root(path: str, roots: Iterable[str]) -> str | None:
    """The deepest of `roots` that `path` lies within, or None."""
    found = [r for r in roots if within(path, r)]
    return max(found, key=lambda r: len(_normalised(r))) if found else None

"""ffrtmp_api.paths: the one set of path rules the models, the plan builder and the runner apply (pure)."""

from __future__ import annotations

import pytest
from ffrtmp_api import paths


@pytest.mark.parametrize(
    ("name", "path", "root", "inside"),
    [
        ("given a file in the root then inside", "/media/a.mp4", "/media", True),
        ("given the root itself then within", "/media", "/media", True),
        ("given a sibling sharing the prefix then outside", "/media2/a.mp4", "/media", False),
        ("given dot-dot out of the root then outside", "/media/../etc/passwd", "/media", False),
        ("given dot-dot that comes back then inside", "/media/x/../a.mp4", "/media", True),
        ("given a root in another spelling then the same root", "/media/a.mp4", "/media/./", True),
        ("given a leading double slash then normalised", "//etc/passwd", "/media", False),
        ("given the filesystem root then everything is within it", "/etc/passwd", "/", True),
        ("given a relative path then never inside", "media/a.mp4", "/media", False),
    ],
)
def test_within(name: str, path: str, root: str, inside: bool) -> None:
    assert paths.within(path, root) is inside, name


def test_given_the_mount_point_itself_then_within_but_not_under() -> None:
    assert paths.within("/media", "/media") and not paths.under("/media", "/media")
    assert paths.under("/media/a", "/media")


def test_given_nested_roots_then_the_deepest_contains_the_path() -> None:
    assert paths.containing_root("/srv/media/a/b", ["/srv", "/srv/media", "/srv/media2"]) == "/srv/media"
    assert paths.containing_root("/opt/x", ["/srv"]) is None


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("media", "absolute"),
        ("/", "must not be /"),
        ("//", "normal form"),
        ("/a//b", "normal form"),
        ("/a/", "normal form"),
        ("/a/.", ". or .."),
        ("/./a", ". or .."),
        ("/a/../b", ". or .."),
        ("/a b", "U+0020"),
        ("/a\tb", "U+0009"),
        ("/a\x00", "U+0000"),
        ("/a\u00a0", "U+00A0"),
        ("/a\u200b", "U+200B"),
        ("/a\u202e", "U+202E"),
        ("/a\u2028", "U+2028"),
    ],
)
def test_normal_form_problems_are_named(path: str, problem: str) -> None:
    found = paths.normal_form_problem(path)
    assert found and problem in found


@pytest.mark.parametrize("path", ["/media", "/a/b.c/..d/...", "/caf\u00e9", "/\uff0e\uff0e", "/a:b", "/$(x);`y`|&"])
def test_paths_in_normal_form_pass(path: str) -> None:
    assert paths.normal_form_problem(path) is None


@pytest.mark.parametrize("mount", ["/etc", "/usr/lib/x86_64-linux-gnu", "/proc", "/var/run/secrets", "/dev/shm"])
def test_given_a_system_directory_then_no_mount_path(mount: str) -> None:
    assert "system directory" in (paths.mount_path_problem(mount) or "")


@pytest.mark.parametrize("mount", ["/media", "/srv/media", "/data", "/tmp/job", "/etcetera", "/variety"])
def test_given_an_ordinary_folder_then_a_mount_path(mount: str) -> None:
    assert paths.mount_path_problem(mount) is None


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("file:///media/a.mp4", "/media/a.mp4"),
        ("file:///media/caf%C3%A9.mp4", "/media/caf\u00e9.mp4"),
        ("file:///media/50%25.mp4", "/media/50%.mp4"),
        ("file:///media/a%3Fb%23c.mp4", "/media/a?b#c.mp4"),
    ],
)
def test_file_url_paths_are_decoded_once(url: str, path: str) -> None:
    assert paths.file_url_path(url) == path


@pytest.mark.parametrize(
    "url",
    [
        "file://host/a",
        "file:/a",
        "file:///a/../b",
        "file:///a/%2e%2e/b",
        "file:///a%2Fb",
        "file:///a?b",
        "file:///a#b",
        "file:///a%20b",
        "file:///a%ff",
        "file:///a/",
        "http:///a",
    ],
)
def test_bad_file_urls_raise(url: str) -> None:
    with pytest.raises(paths.PathError):
        paths.file_url_path(url)

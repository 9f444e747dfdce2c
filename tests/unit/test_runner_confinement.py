"""The runner's confinement, on a real filesystem in tmp_path (no cluster): paths open only inside their
volume whatever links a volume holds (confine.py), concat lists are checked name by name as ffmpeg reads
them (concat.py), and network URLs are rewritten onto the gateway with TLS left to it (netplan.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ffrtmp_agent.runner import concat, netplan
from ffrtmp_agent.runner.confine import Confined, OutputFolder, open_folder, open_input


@pytest.fixture
def volume(tmp_path: Path) -> tuple[Path, Path]:
    """(a volume with in/ and out/ and a media file, a folder elsewhere holding a secret)."""
    media, elsewhere = tmp_path / "media", tmp_path / "elsewhere"
    for folder in (media / "in" / "sub", media / "out", elsewhere):
        folder.mkdir(parents=True)
    (media / "in" / "talk.mp4").write_bytes(b"media")
    (elsewhere / "secret").write_bytes(b"secret")
    return media, elsewhere


def test_given_a_file_in_the_volume_then_it_opens_read_only(volume):
    media, _ = volume
    fd = open_input(str(media / "in" / "talk.mp4"), [str(media)])
    try:
        assert os.read(fd, 10) == b"media"
    finally:
        os.close(fd)


@pytest.mark.parametrize("link", ["file", "folder", "parent-folder", "relative-dotdot"])
def test_given_a_link_leading_outside_then_the_input_is_refused(volume, link: str):
    media, elsewhere = volume
    if link == "file":
        (media / "in" / "x.mp4").symlink_to(elsewhere / "secret")
        path = media / "in" / "x.mp4"
    elif link == "folder":
        (media / "in" / "out-there").symlink_to(elsewhere)
        path = media / "in" / "out-there" / "secret"
    elif link == "parent-folder":
        (media / "linked").symlink_to(elsewhere)
        path = media / "linked" / "secret"
    else:
        (media / "in" / "up.mp4").symlink_to("../../elsewhere/secret")
        path = media / "in" / "up.mp4"
    with pytest.raises(Confined, match="leads outside its volume"):
        open_input(str(path), [str(media)])


def test_given_a_link_that_stays_inside_then_it_is_followed(volume):
    media, _ = volume
    (media / "in" / "alias.mp4").symlink_to("talk.mp4")
    fd = open_input(str(media / "in" / "alias.mp4"), [str(media)])
    os.close(fd)


def test_given_a_fifo_or_a_folder_then_the_input_is_refused(volume):
    media, _ = volume
    os.mkfifo(media / "in" / "pipe.mp4")
    with pytest.raises(Confined, match="not a regular file"):
        open_input(str(media / "in" / "pipe.mp4"), [str(media)])
    with pytest.raises(Confined):
        open_input(str(media / "in" / "sub"), [str(media)])


def test_given_a_path_under_no_volume_then_refused(volume):
    media, elsewhere = volume
    with pytest.raises(Confined, match="not under the mountPath"):
        open_input(str(elsewhere / "secret"), [str(media)])


def test_given_an_output_folder_link_then_refused_and_nothing_made(volume):
    media, elsewhere = volume
    (media / "out" / "linked").symlink_to(elsewhere)
    with pytest.raises(Confined, match="leads outside"):
        OutputFolder(str(media / "out" / "linked" / "deeper"), [str(media)])
    assert sorted(p.name for p in elsewhere.iterdir()) == ["secret"]


def test_given_a_planted_temp_link_then_the_temp_file_replaces_it_and_the_target_is_untouched(volume):
    media, elsewhere = volume
    folder = OutputFolder(str(media / "out" / "new"), [str(media)])
    (media / "out" / "new" / ".x.part.mp4").symlink_to(elsewhere / "secret")
    fd = folder.create(".x.part.mp4")
    os.write(fd, b"encoded")
    os.close(fd)
    (media / "out" / "new" / "x.mp4").symlink_to(elsewhere / "secret")  # a link at the final name
    folder.rename(".x.part.mp4", "x.mp4")
    assert (elsewhere / "secret").read_bytes() == b"secret"
    assert not (media / "out" / "new" / "x.mp4").is_symlink()
    assert (media / "out" / "new" / "x.mp4").read_bytes() == b"encoded"
    folder.close()


def test_given_the_folder_swapped_for_a_link_after_opening_then_writes_stay_in_the_opened_folder(volume):
    media, elsewhere = volume
    folder = OutputFolder(str(media / "out" / "swap"), [str(media)])
    (media / "out" / "swap").rename(media / "out" / "moved")
    (media / "out" / "swap").symlink_to(elsewhere)
    os.close(folder.create("y.mp4"))
    assert (media / "out" / "moved" / "y.mp4").exists() and not (elsewhere / "y.mp4").exists()
    folder.close()


def test_given_the_volume_root_as_output_folder_then_it_opens(volume):
    media, _ = volume
    os.close(open_folder(str(media), [str(media)]))


# ------------------------------------------------------------------------------------------ concat


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("file part.mp4", "part.mp4"),
        ("file 'my part.mp4'", "my part.mp4"),
        ("file li'n'k.mp4", "link.mp4"),
        ("file l\\ink.mp4", "link.mp4"),
        ("  file   sub/p.mp4  ", "sub/p.mp4"),
        ("file 'a'\\''b'", "a'b"),
    ],
)
def test_given_concat_lines_then_names_are_read_as_ffmpeg_reads_them(line: str, name: str):
    assert concat.file_names(f"ffconcat version 1.0\n{line}\n") == [name]


def test_given_an_option_directive_then_the_list_is_refused():
    with pytest.raises(Confined, match="option"):
        concat.file_names("ffconcat version 1.0\nfile a.mp4\noption format_whitelist hls\n")


def test_given_a_list_naming_a_link_that_leads_out_then_refused(volume):
    media, elsewhere = volume
    (media / "in" / "part.mp4").symlink_to(elsewhere / "secret")
    listing = media / "in" / "list.txt"
    listing.write_text("ffconcat version 1.0\nfile talk.mp4\nfile part.mp4\n")
    fd = open_input(str(listing), [str(media)])
    try:
        assert concat.is_list(fd)
        with pytest.raises(Confined, match="names part.mp4"):
            concat.check_list(str(listing), fd, [str(media)])
    finally:
        os.close(fd)


def test_given_a_nested_list_naming_a_link_then_refused(volume):
    media, elsewhere = volume
    (media / "in" / "sub" / "leak.mp4").symlink_to(elsewhere / "secret")
    (media / "in" / "sub" / "inner.txt").write_text("ffconcat version 1.0\nfile leak.mp4\n")
    outer = media / "in" / "outer.txt"
    outer.write_text("ffconcat version 1.0\nfile sub/inner.txt\n")
    fd = open_input(str(outer), [str(media)])
    try:
        with pytest.raises(Confined, match="inner.txt names leak.mp4"):
            concat.check_list(str(outer), fd, [str(media)])
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------- netplan


@pytest.mark.parametrize(
    ("url", "tcurl"),
    [
        ("rtmp://host/live/key", "rtmp://host/live"),
        ("rtmp://host:1936/live/key", "rtmp://host:1936/live"),
        ("rtmp://u:p@host/app/inst/key", "rtmp://host/app/inst"),
        ("rtmps://host/app/mp4:file", "rtmps://host/app"),
        ("rtmp://host/app", "rtmp://host/app"),
        ("RTMP://Host/ondemand/x/y", "rtmp://Host/ondemand"),
    ],
)
def test_given_rtmp_urls_then_tcurl_is_what_ffmpeg_would_send(url: str, tcurl: str):
    assert netplan.rtmp_tcurl(url) == tcurl


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("srt://h:9000", None),
        ("srt://h:9000?mode=caller", None),
        ("srt://h:9000?mode=listener", "listener"),
        ("srt://h:9000?latency=20&mode=rendezvous", "rendezvous"),
    ],
)
def test_given_srt_urls_then_only_callers_are_allowed(url: str, problem: str | None):
    found = netplan.srt_problem(url)
    assert (found is None) if problem is None else (problem in found)


def test_given_an_https_input_then_ffmpeg_opens_the_gateway_over_http_without_tls_or_httpproxy():
    import ffrtmp_api as api

    url = "https://media.example/a/talk.mp4"
    options = ["-protocol_whitelist", "https,http,tls,tcp", "-format_whitelist", "mov", "-i", url]
    plan = api.ExecutionPlan(
        namespace="n",
        job="j",
        jobUid="u",
        attempt=1,
        inputUrl=url,
        inputArgs=options,
        outputUrl="rtmps://out.example/live/key",
        encoder="libx264",
        probeArgs=["ffprobe", *options],
        ffmpegArgs=["ffmpeg", *options, "-c", "copy", "-f", "flv", "rtmps://out.example/live/key"],
    )
    local = {url: "http://127.0.0.1:1111/a/talk.mp4", "rtmps://out.example/live/key": "rtmp://127.0.0.1:2222/live/key"}
    done = netplan.rewrite(plan, local=local.__getitem__, pinned=lambda u: u)
    assert done.plan.inputArgs == [
        "-protocol_whitelist",
        "http,tcp",
        "-format_whitelist",
        "mov",
        "-i",
        "http://127.0.0.1:1111/a/talk.mp4",
    ]
    assert done.plan.probeArgs[-1] == done.plan.ffmpegArgs[6] == "http://127.0.0.1:1111/a/talk.mp4"
    assert done.plan.ffmpegArgs[-6:] == [
        "copy",
        "-rtmp_tcurl",
        "rtmps://out.example/live",
        "-f",
        "flv",
        "rtmp://127.0.0.1:2222/live/key",
    ]
    assert done.shown["http://127.0.0.1:1111/a/talk.mp4"] == url

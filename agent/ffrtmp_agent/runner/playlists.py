"""HLS and DASH text of an ABR ladder, pure: parsing media and master playlists and DASH manifests into
segment lists, the RFC 8216 codec strings, a split ladder's joined media playlists, and the master playlist
the runner writes itself (ffmpeg 5 derives BANDWIDTH from the configured bitrate, which a crf rendition has
none of, and lists the audio rendition as a variant of its own).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DASH_NS = {"mpd": "urn:mpeg:dash:schema:mpd:2011"}
_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


@dataclass(frozen=True)
class Segment:
    uri: str
    seconds: float


@dataclass(frozen=True)
class Variant:
    """One #EXT-X-STREAM-INF entry of a master playlist."""

    uri: str
    attributes: dict[str, str]


def media_segments(text: str) -> list[Segment]:
    """The segments of an HLS media playlist, each with its #EXTINF duration."""
    segments: list[Segment] = []
    seconds: float | None = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#EXTINF:"):
            seconds = float(line[len("#EXTINF:") :].split(",", 1)[0])
        elif line and not line.startswith("#") and seconds is not None:
            segments.append(Segment(line, seconds))
            seconds = None
    return segments


def attributes(text: str) -> dict[str, str]:
    """An attribute list (KEY=value,KEY="quoted, value") as a dict; quotes removed."""
    return {m.group(1): m.group(2).strip('"') for m in _ATTRIBUTE.finditer(text)}


def master_variants(text: str) -> list[Variant]:
    variants: list[Variant] = []
    pending: dict[str, str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#EXT-X-STREAM-INF:"):
            pending = attributes(line.split(":", 1)[1])
        elif line and not line.startswith("#") and pending is not None:
            variants.append(Variant(line, pending))
            pending = None
    return variants


def master_media(text: str) -> list[dict[str, str]]:
    """The #EXT-X-MEDIA entries (alternative renditions such as the audio) of a master playlist."""
    return [attributes(line.split(":", 1)[1]) for line in text.splitlines() if line.startswith("#EXT-X-MEDIA:")]


@dataclass(frozen=True)
class Rates:
    """Bits per second of one media playlist: the highest segment's and the average over all."""

    peak: int
    average: int


def rates(segments: Sequence[Segment], sizes: Mapping[str, int]) -> Rates:
    """From the segments' durations and their file sizes in bytes (by uri)."""
    peak, total_bits, total_seconds = 0.0, 0.0, 0.0
    for segment in segments:
        bits = sizes.get(segment.uri, 0) * 8
        total_bits += bits
        total_seconds += segment.seconds
        if segment.seconds > 0.5:  # a last sliver of a segment says nothing about the rate
            peak = max(peak, bits / segment.seconds)
    average = total_bits / total_seconds if total_seconds else 0.0
    return Rates(round(max(peak, average)), round(average))


@dataclass(frozen=True)
class MasterEntry:
    uri: str
    width: int
    height: int
    rates: Rates
    codecs: str
    frame_rate: float | None = None


def master_playlist(entries: Sequence[MasterEntry], *, audio_uri: str | None, audio_rates: Rates | None) -> str:
    """RFC 8216 master playlist: one variant per rendition, the audio (if any) as one shared rendition in
    group "audio" whose rate is part of every variant's BANDWIDTH and AVERAGE-BANDWIDTH."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audio_uri:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="audio",DEFAULT=YES,AUTOSELECT=YES,URI="{audio_uri}"'
        )
    extra = audio_rates or Rates(0, 0)
    for entry in entries:
        fields = [
            f"BANDWIDTH={entry.rates.peak + extra.peak}",
            f"AVERAGE-BANDWIDTH={entry.rates.average + extra.average}",
            f"RESOLUTION={entry.width}x{entry.height}",
        ]
        if entry.frame_rate:
            fields.append(f"FRAME-RATE={entry.frame_rate:.3f}")
        fields.append(f'CODECS="{entry.codecs}"')
        if audio_uri:
            fields.append('AUDIO="audio"')
        lines += ["#EXT-X-STREAM-INF:" + ",".join(fields), entry.uri]
    return "\n".join(lines) + "\n"


def joined_media_playlist(segments: Sequence[Segment]) -> str:
    """One VOD media playlist of `segments` in order (a split ladder's slices, whose timestamps already
    follow one another): one target duration, the largest segment's rounded up, and an end."""
    target = max((math.ceil(s.seconds - 1e-6) for s in segments), default=1)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{max(1, target)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    for segment in segments:
        lines += [f"#EXTINF:{segment.seconds:.6f},", segment.uri]
    return "\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n"


# -------------------------------------------------------------------------------------- codecs

_AVC_PROFILES = {
    "Baseline": "4200",
    "Constrained Baseline": "42e0",
    "Main": "4d00",
    "Extended": "5800",
    "High": "6400",
    "High 10": "6e00",
    "High 4:2:2": "7a00",
    "High 4:4:4 Predictive": "f400",
}
_HEVC_PROFILES = {"Main": "1.6", "Main 10": "2.4", "Main Still Picture": "3.E", "Rext": "4.10"}
_AUDIO = {"aac": "mp4a.40.2", "mp3": "mp4a.40.34", "opus": "opus", "ac3": "ac-3", "flac": "fLaC"}


def codec_string(stream: Mapping[str, object]) -> str | None:
    """The RFC 6381 codec string of an ffprobe stream entry (codec_name, profile, level), or None."""
    name, profile, level = stream.get("codec_name"), str(stream.get("profile") or ""), stream.get("level")
    if name == "h264" and profile in _AVC_PROFILES and isinstance(level, int) and level > 0:
        return f"avc1.{_AVC_PROFILES[profile]}{level:02x}"
    if name == "hevc" and profile in _HEVC_PROFILES and isinstance(level, int) and level > 0:
        return f"hvc1.{_HEVC_PROFILES[profile]}.L{level}.B0"
    if name == "aac":
        return "mp4a.40.5" if profile == "HE-AAC" else "mp4a.40.2"
    return _AUDIO.get(str(name)) if name in _AUDIO else None


def split_codecs(codecs: str) -> tuple[str | None, str | None]:
    """(video, audio) codec strings of a CODECS attribute as ffmpeg writes it."""
    video = audio = None
    for part in (p.strip() for p in codecs.split(",") if p.strip()):
        if part.startswith(("mp4a", "opus", "ac-3", "ec-3", "fLaC")):
            audio = audio or part
        else:
            video = video or part
    return video, audio


# ---------------------------------------------------------------------------------------- DASH


@dataclass(frozen=True)
class Representation:
    id: str
    content: str  # video | audio
    codecs: str | None
    bandwidth: int | None
    width: int | None
    height: int | None
    segments: list[float]  # seconds of each media segment, from the SegmentTimeline


def dash_representations(text: str) -> list[Representation]:
    """The Representations of a static MPD with SegmentTemplate + SegmentTimeline (ffmpeg's dash muxer
    with use_template and use_timeline). Raises ValueError (ET.ParseError) for XML that is no MPD."""
    root = ET.fromstring(text)
    if root.tag != f"{{{DASH_NS['mpd']}}}MPD":
        raise ValueError(f"not an MPD: root element {root.tag}")
    found: list[Representation] = []
    for adaptation in root.iterfind("mpd:Period/mpd:AdaptationSet", DASH_NS):
        content = adaptation.get("contentType") or (adaptation.get("mimeType") or "").split("/")[0]
        for rep in adaptation.iterfind("mpd:Representation", DASH_NS):
            template = rep.find("mpd:SegmentTemplate", DASH_NS)
            if template is None:
                template = adaptation.find("mpd:SegmentTemplate", DASH_NS)
            found.append(
                Representation(
                    id=rep.get("id", ""),
                    content=content or (rep.get("mimeType") or "").split("/")[0],
                    codecs=rep.get("codecs"),
                    bandwidth=_int(rep.get("bandwidth")),
                    width=_int(rep.get("width")),
                    height=_int(rep.get("height")),
                    segments=_timeline(template),
                )
            )
    return found


def _timeline(template: ET.Element | None) -> list[float]:
    if template is None:
        return []
    scale = int(template.get("timescale", "1"))
    durations: list[float] = []
    for s in template.iterfind("mpd:SegmentTimeline/mpd:S", DASH_NS):
        repeat = int(s.get("r", "0"))
        durations += [int(s.get("d", "0")) / scale] * (repeat + 1)
    return durations


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None

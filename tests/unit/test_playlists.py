"""HLS/DASH text of ABR ladders (runner playlists.py): media and master playlist parsing, measured rates,
the master playlist the runner writes, RFC 6381 codec strings and DASH manifests."""

from __future__ import annotations

import pytest
from ffrtmp_agent.runner import playlists

MEDIA = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:2
#EXTINF:2.000000,
seg_00000.ts
#EXTINF:2.000000,
seg_00001.ts
#EXTINF:0.200000,
seg_00002.ts
#EXT-X-ENDLIST
"""
FFMPEG_MASTER = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="group_audio",NAME="audio_2",DEFAULT=YES,URI="audio/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=105600,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2",AUDIO="group_audio"
360p/index.m3u8

#EXT-X-STREAM-INF:BANDWIDTH=105600,CODECS="mp4a.40.2",AUDIO="group_audio"
audio/index.m3u8
"""


def test_given_a_media_playlist_then_segments_come_with_their_durations() -> None:
    segments = playlists.media_segments(MEDIA)
    assert [(s.uri, s.seconds) for s in segments] == [
        ("seg_00000.ts", 2.0),
        ("seg_00001.ts", 2.0),
        ("seg_00002.ts", 0.2),
    ]


def test_given_ffmpeg_s_master_then_variants_keep_quoted_attributes_with_commas() -> None:
    variants = playlists.master_variants(FFMPEG_MASTER)
    assert [v.uri for v in variants] == ["360p/index.m3u8", "audio/index.m3u8"]
    assert variants[0].attributes["CODECS"] == "avc1.64001e,mp4a.40.2"
    assert playlists.split_codecs(variants[0].attributes["CODECS"]) == ("avc1.64001e", "mp4a.40.2")
    assert playlists.master_media(FFMPEG_MASTER)[0]["URI"] == "audio/index.m3u8"


def test_given_segments_and_sizes_then_peak_ignores_a_last_sliver_and_average_is_bits_over_time() -> None:
    segments = playlists.media_segments(MEDIA)
    rates = playlists.rates(segments, {"seg_00000.ts": 100_000, "seg_00001.ts": 200_000, "seg_00002.ts": 50_000})
    assert rates.peak == 800_000  # 200 kB in 2 s; the 0.2 s sliver (2 Mbit/s) does not count
    assert rates.average == round(350_000 * 8 / 4.2)


def test_given_entries_and_an_audio_rendition_then_the_master_adds_the_audio_rate_to_every_variant() -> None:
    text = playlists.master_playlist(
        [
            playlists.MasterEntry(
                "240p/index.m3u8", 426, 240, playlists.Rates(400_000, 300_000), "avc1.640015,mp4a.40.2", 25.0
            )
        ],
        audio_uri="audio/index.m3u8",
        audio_rates=playlists.Rates(70_000, 64_000),
    )
    variant = playlists.master_variants(text)[0]
    assert variant.attributes == {
        "BANDWIDTH": "470000",
        "AVERAGE-BANDWIDTH": "364000",
        "RESOLUTION": "426x240",
        "FRAME-RATE": "25.000",
        "CODECS": "avc1.640015,mp4a.40.2",
        "AUDIO": "audio",
    }
    assert playlists.master_media(text) == [
        {
            "TYPE": "AUDIO",
            "GROUP-ID": "audio",
            "NAME": "audio",
            "DEFAULT": "YES",
            "AUTOSELECT": "YES",
            "URI": "audio/index.m3u8",
        }
    ]
    assert text.startswith("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n")


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        ({"codec_name": "h264", "profile": "High", "level": 30}, "avc1.64001e"),
        ({"codec_name": "h264", "profile": "Main", "level": 40}, "avc1.4d0028"),
        ({"codec_name": "h264", "profile": "Constrained Baseline", "level": 21}, "avc1.42e015"),
        ({"codec_name": "hevc", "profile": "Main", "level": 93}, "hvc1.1.6.L93.B0"),
        ({"codec_name": "aac", "profile": "LC"}, "mp4a.40.2"),
        ({"codec_name": "aac", "profile": "HE-AAC"}, "mp4a.40.5"),
        ({"codec_name": "opus"}, "opus"),
        ({"codec_name": "h264", "profile": "High"}, None),
    ],
)
def test_codec_string(stream: dict[str, object], expected: str | None) -> None:
    assert playlists.codec_string(stream) == expected


MPD = """<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT8.0S">
 <Period id="0" start="PT0.0S">
  <AdaptationSet id="0" contentType="video" segmentAlignment="true">
   <Representation id="0" mimeType="video/mp4" codecs="avc1.640015" bandwidth="300000" width="426" height="240">
    <SegmentTemplate timescale="12800" initialization="init-$RepresentationID$.m4s"
                     media="chunk-$RepresentationID$-$Number%05d$.m4s" startNumber="1">
     <SegmentTimeline><S t="0" d="25600" r="3" /></SegmentTimeline>
    </SegmentTemplate>
   </Representation>
  </AdaptationSet>
  <AdaptationSet id="1" contentType="audio">
   <Representation id="1" mimeType="audio/mp4" codecs="mp4a.40.2" bandwidth="96000">
    <SegmentTemplate timescale="48000"><SegmentTimeline><S t="0" d="92160" /><S d="96256" r="1" /></SegmentTimeline>
    </SegmentTemplate>
   </Representation>
  </AdaptationSet>
 </Period>
</MPD>
"""


def test_given_ffmpeg_s_mpd_then_representations_and_their_segment_timelines_are_read() -> None:
    video, audio = playlists.dash_representations(MPD)
    assert (video.id, video.content, video.codecs, video.width, video.height) == ("0", "video", "avc1.640015", 426, 240)
    assert video.segments == [2.0] * 4
    assert audio.content == "audio" and audio.segments == [1.92, 96256 / 48000, 96256 / 48000]


def test_given_xml_that_is_no_mpd_then_refused() -> None:
    with pytest.raises(ValueError):
        playlists.dash_representations("<html/>")

"""Carrying a source file's sound into a written video, in sync and cut to the video's length.

The output timeline starts at the source's first video frame (its video stream's start time), because
that is the frame the animation's first frame was made from. Audio before it is dropped, audio after the
video's end is cut, and audio that starts late keeps its delay (as silence when re-encoded).

Packets are copied untouched when the output container accepts the codec; otherwise they are decoded,
resampled and re-encoded. The source is read packet by packet in step with the video being written (about
a second behind it, so the end can still be cut exactly), so memory stays bounded. A damaged packet is
skipped when re-encoding (its span becomes silence); it never ends the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np

from animate_cli.media.common import require_input_file

AudioMode = Literal["copy", "encode"]

# numpy dtype of each packed sample format (a planar format "xxxp" shares the dtype of "xxx").
_SAMPLE_DTYPES = {
    "u8": np.uint8,
    "s16": np.int16,
    "s32": np.int32,
    "s64": np.int64,
    "flt": np.float32,
    "dbl": np.float64,
}


def audio_duration(path: str | os.PathLike[str]) -> float | None:
    """Seconds of sound in the first audio stream of ``path``: decoded samples / rate, None without audio.

    Packets that fail to decode are skipped, as when the sound is carried into an output.
    """
    with av.open(str(require_input_file(path)), metadata_errors="replace") as container:  # tags need not be UTF-8
        if not container.streams.audio:
            return None
        samples, rate = 0, 0
        for packet in container.demux(container.streams.audio[0]):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue
            for frame in frames:
                samples += frame.samples
                rate = frame.sample_rate
        return samples / rate if rate else 0.0


class AudioTrack:
    """The audio of one source file on its way into one output container.

    Use :meth:`open`, then :meth:`add_stream` before the output's first packet, :meth:`pump` as the video
    advances, :meth:`finish` once the video's end is known, and :meth:`close`.
    """

    def __init__(
        self,
        container: av.container.InputContainer,
        output: av.container.OutputContainer,
        encoder: str,
    ) -> None:
        self._container = container
        self._output = output
        self._source = container.streams.audio[0]
        self._encoder = encoder
        # Compare canonical codec names ("mp3"), not decoder names ("mp3float").
        codec = self._source.codec_context.codec.canonical_name
        self.mode: AudioMode = "copy" if codec in output.supported_codecs else "encode"
        self._origin = _video_start(container)
        self._packets: Iterator[av.Packet] = container.demux(self._source)
        self._pending: av.Packet | None = None
        self._stream: av.audio.stream.AudioStream | None = None
        self._done = False
        # Re-encoding state. The output format is set by add_stream; a resampler is made for each change of
        # the decoded audio's format, layout or rate (a stream may switch from mono to stereo midway).
        self._rate = 0
        self._sample_format = ""
        self._layout = ""
        self._resampler: av.AudioResampler | None = None
        self._resampler_input: tuple[str, str, int] | None = None
        self._position: int | None = None  # output samples from the origin of the next resampled sample
        self._written = 0  # output samples handed to the encoder
        self._expected: float | None = None  # source seconds where the next decoded frame should start

    @classmethod
    def open(
        cls, source: str | os.PathLike[str], output: av.container.OutputContainer, encoder: str
    ) -> AudioTrack | None:
        """Prepare to carry ``source``'s first audio stream into ``output``; None if it has no usable audio.

        ``encoder`` is the codec used when the output container cannot take the source's codec as is.
        A folder (of frame images) and a file PyAV cannot read simply have no audio.

        Raises:
            MediaError: ``source`` is missing or empty.
        """
        if Path(source).is_dir():
            return None
        require_input_file(source)
        try:
            container = av.open(str(source), metadata_errors="replace")  # tags need not be UTF-8
        except av.error.FFmpegError:
            return None
        if not container.streams.audio or container.streams.audio[0].codec_context is None:
            container.close()
            return None
        return cls(container, output, encoder)

    def add_stream(self) -> None:
        """Add the output audio stream; must happen before the output container writes its first packet."""
        if self.mode == "copy":
            self._stream = self._output.add_stream_from_template(self._source)
            return
        codec = av.Codec(self._encoder, "w")
        source = self._source.codec_context
        rates = codec.audio_rates
        if not rates or source.sample_rate in rates:
            self._rate = source.sample_rate
        else:
            self._rate = 48000 if 48000 in rates else max(rates)
        formats = [f.name for f in codec.audio_formats or ()]
        self._sample_format = next((f for f in ("fltp", "flt") if f in formats), formats[0] if formats else "fltp")
        # Mono stays mono; anything wider becomes stereo, which every encoder and player handles.
        self._layout = "mono" if source.layout.nb_channels == 1 else "stereo"
        stream = self._output.add_stream(self._encoder, rate=self._rate)
        stream.codec_context.layout = self._layout
        stream.codec_context.format = self._sample_format
        stream.time_base = Fraction(1, self._rate)
        self._stream = stream

    def pump(self, until: float) -> None:
        """Write the audio that starts before ``until`` seconds (the video written so far, less a margin)."""
        if self._stream is None or self._done:
            return
        if self.mode == "copy":
            self._copy(until, end=None)
        else:
            self._encode(until, end=None)

    def finish(self, end: float) -> None:
        """Write the remaining audio up to ``end`` seconds (the video's duration) and flush the encoder."""
        if self._stream is None or self._done:
            return
        if self.mode == "copy":
            self._copy(end, end=end)
        else:
            self._encode(end, end=end)
            if self._resampler is not None:  # else no audio frame was ever decoded: nothing to flush
                self._emit(self._resampler.resample(None), round(end * self._rate))
            self._mux(self._stream.encode(None))
        self._done = True

    def close(self) -> None:
        """Close the source file."""
        self._container.close()

    def _next_packet(self) -> av.Packet | None:
        """The next source packet, or None at the end; a read error ends the audio, never the run."""
        if self._pending is not None:
            packet, self._pending = self._pending, None
            return packet
        try:
            return next(self._packets, None)
        except av.error.FFmpegError:
            return None

    def _copy(self, until: float, end: float | None) -> None:
        time_base = self._source.time_base
        shift = round(self._origin / time_base)
        while (packet := self._next_packet()) is not None:
            if packet.size == 0 or (packet.pts is None and packet.dts is None):
                continue  # the demuxer's flush marker, or a packet with no place in time
            start = ((packet.pts if packet.pts is not None else packet.dts) - shift) * time_base
            if start >= until:
                if end is None:
                    self._pending = packet
                return
            # Keep a packet that ends exactly at the origin: AAC's priming packet, needed to decode the next.
            if start + (packet.duration or 0) * time_base < 0:
                continue
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self._stream
            self._output.mux(packet)

    def _encode(self, until: float, end: float | None) -> None:
        limit = round(until * self._rate)
        end_sample = None if end is None else round(end * self._rate)
        while self._position is None or self._position < limit:
            packet = self._next_packet()
            if packet is None:
                return
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue  # a damaged packet: its span becomes silence through the gap check in _resample
            for frame in frames:
                self._emit(self._resample(frame), end_sample)

    def _resample(self, frame: av.AudioFrame) -> list[av.AudioFrame]:
        """Resample one decoded frame, preceded by silence if audio is missing before it."""
        frames: list[av.AudioFrame] = []
        signature = (frame.format.name, frame.layout.name, frame.sample_rate)
        if signature != self._resampler_input:
            if self._resampler is not None:
                frames += self._resampler.resample(None)
            self._resampler = av.AudioResampler(format=self._sample_format, layout=self._layout, rate=self._rate)
            self._resampler_input = signature
        duration = frame.samples / frame.sample_rate
        start = None if frame.pts is None or frame.time_base is None else float(frame.pts * frame.time_base)
        if self._position is None:
            offset = 0.0 if start is None else start - float(self._origin)
            # Audio starting before the first video frame is trimmed once resampled (negative position);
            # audio starting after it is preceded by silence.
            self._position = min(0, round(offset * self._rate))
            self._expected = float(self._origin) if offset > 0 else start
        if start is not None and self._expected is not None and start - self._expected > duration / 2:
            gap = round((start - self._expected) * frame.sample_rate)
            # In pieces of at most a second, so a long gap never needs a large buffer.
            for piece in range(0, gap, frame.sample_rate):
                frames += self._resampler.resample(_silence(frame, min(frame.sample_rate, gap - piece)))
        frames += self._resampler.resample(frame)
        self._expected = None if start is None else start + duration
        return frames

    def _emit(self, frames: list[av.AudioFrame], end_sample: int | None) -> None:
        """Encode the part of consecutive resampled frames between the origin and ``end_sample``."""
        for frame in frames:
            first = max(0, -self._position)
            stop = frame.samples if end_sample is None else min(frame.samples, end_sample - self._position)
            self._position += frame.samples
            if stop <= first:
                continue
            if (first, stop) != (0, frame.samples):
                frame = _cut(frame, first, stop)
            frame.pts = self._written
            frame.time_base = Fraction(1, self._rate)
            self._written += frame.samples
            self._mux(self._stream.encode(frame))

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            self._output.mux(packet)


def _video_start(container: av.container.InputContainer) -> Fraction:
    """Seconds at which the source's first video frame starts: the zero of the output timeline.

    A file without video (an audio-only source) starts where its audio starts.
    """
    streams = container.streams.video or container.streams.audio
    stream = streams[0]
    if stream.start_time is None or stream.time_base is None:
        return Fraction(0)
    return stream.start_time * stream.time_base


def _columns(frame: av.AudioFrame) -> int:
    """Array columns per sample in ``frame.to_ndarray()``: one row per channel if planar, else interleaved."""
    return 1 if frame.format.is_planar else frame.layout.nb_channels


def _cut(frame: av.AudioFrame, first: int, stop: int) -> av.AudioFrame:
    """A new frame holding samples ``first:stop`` of ``frame``."""
    columns = _columns(frame)
    return _frame_like(frame, np.ascontiguousarray(frame.to_ndarray()[:, first * columns : stop * columns]))


def _silence(like: av.AudioFrame, samples: int) -> av.AudioFrame:
    """``samples`` samples of silence in the format, layout and rate of ``like``."""
    dtype = _SAMPLE_DTYPES[like.format.packed.name]
    columns = _columns(like)
    rows = like.layout.nb_channels // columns
    # Unsigned 8-bit audio is centred on 128; every other format on 0.
    fill = 128 if dtype is np.uint8 else 0
    return _frame_like(like, np.full((rows, samples * columns), fill, dtype=dtype))


def _frame_like(like: av.AudioFrame, samples: np.ndarray) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(samples, format=like.format.name, layout=like.layout.name)
    frame.sample_rate = like.sample_rate
    return frame

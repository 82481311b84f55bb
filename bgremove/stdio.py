"""One image through the pipeline as bytes: ``bgremove - < in.jpg > out.png`` in a shell pipe.

The bytes are identified by content, like files. The output format follows the same rules as files
(PNG for transparent output and mattes, the input's format for opaque output, or ``--format``).
Videos are not read from a pipe: their reader seeks, and a video is rarely piped whole.
"""

from __future__ import annotations

from .config import OutputConfig
from .errors import OutputError, UnsupportedMedia, UsageProblem
from .media import decode_image, encode_image, output_format
from .pipeline import Pipeline

STDIN_NAME = "<stdin>"

# Leading bytes of the video containers people pipe: MP4/MOV box names at offset 4, Matroska/WebM
# EBML, AVI, FLV, Ogg, ASF/WMV, MPEG program stream.
_VIDEO_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")
_VIDEO_SIGNATURES = (b"\x1a\x45\xdf\xa3", b"FLV", b"OggS", b"\x30\x26\xb2\x75", b"\x00\x00\x01\xba")


def looks_like_video(data: bytes) -> bool:
    """Whether the bytes start like a video container (checked after they failed as an image)."""
    if data[4:8] in _VIDEO_BOXES or data.startswith(_VIDEO_SIGNATURES):
        return True
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return True
    return len(data) > 188 and data[0] == 0x47 and data[188] == 0x47  # MPEG transport stream


def process_bytes(pipeline: Pipeline, data: bytes, config: OutputConfig,
                  name: str = STDIN_NAME) -> tuple[bytes, str]:
    """Decode an image from bytes, run the pipeline, encode the result: (bytes, Pillow format name).

    Raises ``UsageProblem`` for a video, ``UnsupportedMedia`` for bytes that are no image,
    ``OutputError`` for a format that cannot hold the result.
    """
    try:
        frame, info = decode_image(data, name)
    except UnsupportedMedia:
        if looks_like_video(data):
            raise UsageProblem(f"{name}: is a video; videos cannot be read from stdin, give the file's path") from None
        raise
    if config.format is None and config.video_format is not None:
        raise OutputError(f"{name}: is an image and --format {config.video_format} is a video format; "
                          "add --format png, jpg or webp for images")
    fmt = output_format(pipeline.composite_config.mode, info.format, config.format)
    pixels = pipeline.process_frame(frame)
    return encode_image(pixels, fmt, jpeg_quality=config.jpeg_quality, subsampling=info.subsampling), fmt

"""The Stageless OpenFeature provider and the sources it reads flags from.

``StagelessProvider.from_file("flags.yaml")`` evaluates a flagd-format flag file in-process and
reloads it when it changes; ``StagelessProvider.from_server(url, "web", token)`` keeps flag set
"web" in sync with the control plane over its live stream; see docs/sdk.md.
"""

from stageless.sdk.file_source import FileSource, load_flag_file
from stageless.sdk.provider import StagelessProvider
from stageless.sdk.source import FlagSource, SourceListener, SourceUnavailableError, StaticSource
from stageless.sdk.stream_source import StreamOptions, StreamSource

__all__ = [
    "FileSource",
    "FlagSource",
    "SourceListener",
    "SourceUnavailableError",
    "StagelessProvider",
    "StaticSource",
    "StreamOptions",
    "StreamSource",
    "load_flag_file",
]

"""Peer-to-peer upgrade over a WebRTC data channel (issue 18).

Sans-IO parts only so far: :mod:`.chunking` (the 1-byte chunk framing), :mod:`.messages`
(the JSON messages on the channel, checked against :class:`.limits.ChannelLimits`) and
:mod:`.sdp` (the DTLS fingerprints an offer or answer carries). The aiortc adapter, the
host's answerer and the client's offerer build on these; see docs/webrtc.md.
"""

from .chunking import ChunkError, Reassembler, split_message
from .limits import ChannelLimits
from .messages import ChannelMessage, MessageError, decode_message, encode_message
from .sdp import SdpError, dtls_fingerprints

__all__ = [
    "ChannelLimits",
    "ChannelMessage",
    "ChunkError",
    "MessageError",
    "Reassembler",
    "SdpError",
    "decode_message",
    "dtls_fingerprints",
    "encode_message",
    "split_message",
]

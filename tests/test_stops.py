"""Stop strings, UTF-8 joining and take-back-free streaming (no model needed)."""

from __future__ import annotations

from marco_cli.backends.base import Stop, StopReason
from marco_cli.backends.stops import ContinuationText

DELIM = Stop("\n\n", StopReason.DELIMITER, needs_content=True)
THOUGHT_END = Stop("</Thought>", StopReason.THOUGHT_END, keep=False)


def _feed(ct: ContinuationText, pieces: list[bytes]):
    streamed, match = [], None
    for i, p in enumerate(pieces):
        match = ct.add(p)
        if match:  # the engine streams what survives the cut via finish()
            return i, match, streamed
        streamed.append(ct.streamable())
    return None, None, streamed


def test_stop_spanning_tokens_keeps_all_tokens():
    ct = ContinuationText((DELIM,))
    i, match, _ = _feed(ct, [b"One", b".\n", b"\nTwo"])
    assert i == 2 and match.stop is DELIM and match.cut == 3


def test_needs_content_ignores_leading_whitespace_match():
    ct = ContinuationText((DELIM,))
    i, match, _ = _feed(ct, [b"\n\n", b"Step", b" one", b"\n\n"])
    assert i == 3 and match.start == 10


def test_keep_false_cuts_at_the_token_where_the_stop_begins():
    ct = ContinuationText((THOUGHT_END,))
    i, match, streamed = _feed(ct, [b"so 4", b".</", b"Thought", b">"])
    assert i == 3 and match.cut == 1
    # ".</" was never streamed: it is taken back by the cut.
    assert "".join(streamed) == "so 4"
    assert ct.finish("so 4") == ""


def test_stop_inside_the_text_of_the_last_token():
    stop = Stop("aches ", StopReason.THOUGHT_END, keep=False)
    ct = ContinuationText((stop,))
    i, match, streamed = _feed(ct, [b"When", b" sunlight", b" reaches", b" our"])
    assert i == 3 and match.cut == 2
    assert "".join(streamed) == "When sunlight"


def test_streaming_releases_a_false_alarm():
    ct = ContinuationText((THOUGHT_END,))
    _, match, streamed = _feed(ct, [b"a <", b"b", b" c"])
    assert match is None
    assert "".join(streamed) == "a <b c"


def test_forced_text_never_stops_itself():
    ct = ContinuationText((DELIM,))
    assert ct.add(b"Hi.\n\n", forced=True) is None
    assert ct.add(b"ok") is None
    assert ct.add(b"\n\n").start == 7


def test_multibyte_character_split_across_tokens():
    ct = ContinuationText(())
    data = "踩屎感 😀".encode()
    pieces = [data[:2], data[2:5], data[5:11], data[11:]]
    out = []
    for p in pieces:
        ct.add(p)
        out.append(ct.streamable())
    assert "\ufffd" not in "".join(out)
    assert "".join(out) + ct.finish("踩屎感 😀") == "踩屎感 😀"


def test_earliest_stop_wins():
    out_end = Stop("</Output>", StopReason.OUTPUT_END)
    ct = ContinuationText((DELIM, out_end))
    match = ct.add(b"x</Output>\n\n")
    assert match.stop is out_end

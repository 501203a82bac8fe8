"""topic.py - the rules for topics and subscription patterns, client side.

The same rules as the broker's (src/common/topic.h), so that a bad topic is
refused here, with a clear message, before anything is sent:

- A topic is 1..255 bytes of valid UTF-8: tokens separated by '.', no empty
  token, no space, no control byte (below 0x20, or 0x7f), and no '*' or '>'
  anywhere.
- A pattern follows the same rules except that a whole token may be '*'
  (exactly one token) or, as the last token only, '>' (one or more tokens).
  A '*' or '>' inside a longer token ("a*", "b>c") is an error.
- Only bytes are constrained beyond UTF-8 validity: C1 controls
  (U+0080..U+009F) pass.  A str holding a lone surrogate cannot be UTF-8
  and fails.

  valid topics:     "a"  "orders.eu.new"  "$SYS.broker.stats"  "café.ü"
  invalid topics:   ""  "a..b"  ".a"  "a."  "a b"  "a.*"  "a.>"  "a\\tb"
  valid patterns:   "a.*.c"  "a.>"  ">"  "*"  "*.*"  "$SYS.>"
  invalid patterns: "a.>.c"  "a*"  "a.b>"  "a..*"

Matching: "a.*.c" matches "a.b.c"; "a.>" matches "a.b" and "a.b.c" but not
"a".  Topics beginning with '$' are the broker's own: a pattern whose first
token is '*' or '>' does not match them, and clients may not publish to them.

Like the broker, a check reports the first fault met reading left to right
(after the length checks).  Valid strings take one regular-expression match;
the slow scan runs only to name the fault.
"""

import re

from .errors import BadTopic

TOPIC_MAX = 255
"""Bytes in a topic or pattern, as UTF-8."""

# A token of ordinary characters: anything but '.', the wildcards, space,
# C0 controls, DEL and surrogates (which have no UTF-8 form).
_TOKEN = "[^.*>\x00-\x20\x7f\ud800-\udfff]+"
_TOPIC_RE = re.compile("%s(?:\\.%s)*" % (_TOKEN, _TOKEN))
_PATTERN_RE = re.compile(
    "(?:>|(?:%s|\\*)(?:\\.(?:%s|\\*))*(?:\\.>)?)" % (_TOKEN, _TOKEN))


def _utf8_len(s: str) -> int:
    if s.isascii():
        return len(s)
    return len(s.encode("utf-8", "surrogatepass"))


def _fault(s: str, pattern: bool) -> str:
    """The first rule S breaks, as a short phrase (S is known to be bad)."""
    n = _utf8_len(s)
    if n == 0:
        return "empty topic"
    if n > TOPIC_MAX:
        return "longer than %d bytes" % TOPIC_MAX
    tok = 0  # index where the current token began
    for i, ch in enumerate(s):
        o = ord(ch)
        if 0xD800 <= o <= 0xDFFF:
            return "not valid UTF-8"
        if o <= 0x20 or o == 0x7F:
            return "space or control character"
        if ch == ".":
            if i == tok:
                return "empty token"
            tok = i + 1
        elif ch in "*>":
            if not pattern:
                return "wildcard in a published topic"
            if i != tok or (i + 1 < len(s) and s[i + 1] != "."):
                return "wildcard inside a token"
            if ch == ">" and i + 1 != len(s):
                return "'>' before the last token"
    if tok == len(s):
        return "empty token"
    return "invalid"  # not reached for a string the regex refused


def check_topic(topic: str, what: str = "topic") -> None:
    """Raises BadTopic unless TOPIC may be published to.

    WHAT names the string in the message ("topic", "reply_to", ...).
    """
    if not isinstance(topic, str):
        raise BadTopic("%s must be a str, not %s" % (what, type(topic).__name__))
    if _TOPIC_RE.fullmatch(topic) is None or (len(topic) > TOPIC_MAX // 4
                                              and _utf8_len(topic) > TOPIC_MAX):
        raise BadTopic("bad %s %r: %s" % (what, topic, _fault(topic, False)))


def check_pattern(pattern: str) -> None:
    """Raises BadTopic unless PATTERN is a valid subscription pattern."""
    if not isinstance(pattern, str):
        raise BadTopic("pattern must be a str, not %s" % type(pattern).__name__)
    if _PATTERN_RE.fullmatch(pattern) is None or (len(pattern) > TOPIC_MAX // 4
                                                  and _utf8_len(pattern) > TOPIC_MAX):
        raise BadTopic("bad pattern %r: %s" % (pattern, _fault(pattern, True)))


def is_valid_topic(topic: str) -> bool:
    """True when TOPIC may be published to (the '$' rule aside)."""
    try:
        check_topic(topic)
    except BadTopic:
        return False
    return True


def is_valid_pattern(pattern: str) -> bool:
    """True when PATTERN is a valid subscription pattern."""
    try:
        check_pattern(pattern)
    except BadTopic:
        return False
    return True


def matches(pattern: str, topic: str) -> bool:
    """True when checked PATTERN matches checked TOPIC, '$' rule included."""
    if topic.startswith("$") and pattern[:1] in ("*", ">"):
        return False
    p, t = pattern.split("."), topic.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(t) > i
        if i >= len(t) or (tok != "*" and tok != t[i]):
            return False
    return len(p) == len(t)

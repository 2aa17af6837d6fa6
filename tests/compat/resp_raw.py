"""A minimal RESP client that returns each reply as its exact bytes.

The compatibility suite compares Ketch's replies with Redis' byte for byte, so this client
does not decode replies into Python values the way redis-py does: it sends one command as
an array of bulk strings and reads exactly one whole reply, using the framing of RESP2 and
RESP3 only to know where the reply ends. The parsed tree is returned next to the bytes for
the normalizers (see `normalize.py`), which need structure, never for the default
comparison.

Framing understood (RESP3 is a superset of RESP2):
  + - : _ # , (      one line up to CRLF (simple string, error, integer, null, boolean,
                     double, big number)
  $ ! =              <length> CRLF <bytes> CRLF (bulk string, blob error, verbatim string);
                     `$-1` is RESP2's null bulk string
  * ~ >              <count> CRLF then count replies (array, set, push); `*-1` is RESP2's
                     null array
  % |                <count> CRLF then 2*count replies (map, attribute); an attribute is
                     followed by the reply it annotates, which is returned with it

A tree node is `(type_byte, value)`: the line or payload bytes for scalars, `None` for the
nulls, a list of nodes for aggregates (maps flattened to key, value, key, value...).
"""

import socket

#: A reply larger than this is refused: every reply the suite provokes is far smaller, and a
#: runaway reply must not exhaust the test machine's memory.
REPLY_BYTES_MAX = 16 << 20

#: Nesting deeper than this is refused (COMMAND DOCS nests 5 levels).
DEPTH_MAX = 64

LINE_TYPES = b"+-:_#,("
BLOB_TYPES = b"$!="
AGGREGATE_TYPES = b"*~>"
PAIR_TYPES = b"%|"


class Incomplete(Exception):
    """The buffer does not hold a whole reply yet."""


class ProtocolError(Exception):
    """The bytes are not RESP."""


def encode_command(args):
    """The command `args` (str or bytes) as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


def _line(buf, pos):
    end = buf.find(b"\r\n", pos)
    if end < 0:
        if len(buf) - pos > REPLY_BYTES_MAX:
            raise ProtocolError("a line longer than %d bytes" % REPLY_BYTES_MAX)
        raise Incomplete()
    return buf[pos:end], end + 2


def _count(text):
    try:
        return int(text)
    except ValueError:
        raise ProtocolError("bad length %r" % text) from None


def parse(buf, pos=0, depth=0):
    """Parses one reply starting at `pos`; `(node, end)`. Raises Incomplete or ProtocolError."""
    if depth > DEPTH_MAX:
        raise ProtocolError("nesting deeper than %d" % DEPTH_MAX)
    if pos >= len(buf):
        raise Incomplete()
    kind = buf[pos]
    text, pos = _line(buf, pos + 1)
    if kind in LINE_TYPES:
        return (kind, None if kind == ord("_") else text), pos
    count = _count(text)
    if kind in BLOB_TYPES:
        if count == -1 and kind == ord("$"):
            return (kind, None), pos
        if count < 0 or count > REPLY_BYTES_MAX:
            raise ProtocolError("bad blob length %d" % count)
        if len(buf) < pos + count + 2:
            raise Incomplete()
        if buf[pos + count : pos + count + 2] != b"\r\n":
            raise ProtocolError("blob not followed by CRLF")
        return (kind, buf[pos : pos + count]), pos + count + 2
    if kind in AGGREGATE_TYPES or kind in PAIR_TYPES:
        if count == -1 and kind == ord("*"):
            return (kind, None), pos
        if count < 0 or count > REPLY_BYTES_MAX:
            raise ProtocolError("bad aggregate count %d" % count)
        items = []
        for _ in range(count * (2 if kind in PAIR_TYPES else 1)):
            item, pos = parse(buf, pos, depth + 1)
            items.append(item)
        if kind == ord("|"):
            annotated, pos = parse(buf, pos, depth + 1)
            return (kind, items + [annotated]), pos
        return (kind, items), pos
    raise ProtocolError("unknown reply type byte %r" % bytes([kind]))


class RawConnection:
    """One TCP connection; `call` sends a command and returns `(reply_bytes, tree)`."""

    def __init__(self, address, timeout_s=5.0):
        host, port = address
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def call(self, args):
        """Sends `args` and reads one whole reply."""
        self.sock.sendall(encode_command(args))
        return self.read_reply()

    def read_reply(self):
        """Reads one whole reply: `(bytes, tree)`. Raises on close, timeout or bad framing."""
        while True:
            try:
                tree, end = parse(self.buf)
            except Incomplete:
                if len(self.buf) > REPLY_BYTES_MAX:
                    raise ProtocolError("reply longer than %d bytes" % REPLY_BYTES_MAX)
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed before a whole reply")
                self.buf += chunk
                continue
            reply, self.buf = self.buf[:end], self.buf[end:]
            return reply, tree

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

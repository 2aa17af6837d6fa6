"""Normalizers: where a reply is inherently not comparable byte for byte.

By default a reply is compared as its exact bytes. A step may name one normalizer instead;
each turns a reply (its bytes and parsed tree, see `resp_raw.py`) into a canonical string,
and the two servers' canonical strings are compared. Each one exists for one reason:

  unordered      KEYS, HKEYS, HVALS: Redis returns elements in hash-table order, which is
                 not specified; compare the sorted elements (and the reply's type).
  pairs          HGETALL, CONFIG GET: a map (RESP3 `%`, RESP2 a flat array of field, value)
                 whose order is not specified; compare the sorted pairs.
  ttl:N:T        TTL, PTTL after an expiry N (seconds or milliseconds): time passes between
                 the write and the read, differently on each server; a value in [N-T, N]
                 reads as "~N", anything else (-1, -2, out of range) as itself.
  shape          CLIENT ID, TIME, COMMAND INFO/DOCS, COMMAND COUNT: ids, clocks and command
                 tables differ by nature; compare the structure and the type of every leaf,
                 and nothing of the values.
  info           INFO: contents are the server's own; compare the reply type, the set of
                 section headers, and that a `redis_version:` field is present.
  client_fields  CLIENT LIST, CLIENT INFO: compare the field names of each line, not their
                 values (ids, addresses, ages).
  hello          HELLO: compare the map's keys, the `proto` value, and the shape of the
                 other values (server name, version, id and role are the server's own).
"""

TYPE_NAMES = {
    ord("+"): "simple",
    ord("-"): "error",
    ord(":"): "integer",
    ord("_"): "null",
    ord("#"): "boolean",
    ord(","): "double",
    ord("("): "bignum",
    ord("$"): "bulk",
    ord("!"): "bloberror",
    ord("="): "verbatim",
    ord("*"): "array",
    ord("~"): "set",
    ord(">"): "push",
    ord("%"): "map",
    ord("|"): "attribute",
}


def type_name(node):
    """The RESP type of a node, by name; RESP2's null bulk string and null array say so."""
    kind, value = node
    name = TYPE_NAMES.get(kind, "?")
    if value is None and kind in (ord("$"), ord("*")):
        return name + "(null)"
    return name


def is_error(node):
    """True for an error reply (simple or blob)."""
    return node[0] in (ord("-"), ord("!"))


def text_of(node):
    """The payload of a string-like node as text; verbatim strings lose their `txt:`."""
    kind, value = node
    if value is None or isinstance(value, list):
        return None
    if kind == ord("="):
        value = value[4:]
    return value.decode("utf-8", "replace")


def shape(node):
    """The structure of a node with every leaf replaced by its type."""
    kind, value = node
    if isinstance(value, list):
        return "%s[%s]" % (type_name(node), ",".join(shape(item) for item in value))
    return type_name(node)


def _unordered(node, _raw):
    if not isinstance(node[1], list):
        return None
    items = sorted(repr(item) for item in node[1])
    return "%s{%s}" % (type_name(node), ",".join(items))


def _pairs(node, _raw):
    if not isinstance(node[1], list) or len(node[1]) % 2:
        return None
    items = node[1]
    pairs = sorted(repr((items[i], items[i + 1])) for i in range(0, len(items), 2))
    return "%s{%s}" % (type_name(node), ",".join(pairs))


def _ttl(expected, tolerance):
    def normalize(node, _raw):
        if node[0] != ord(":"):
            return None
        value = int(node[1])
        if expected - tolerance <= value <= expected:
            return ":~%d" % expected
        return ":%d" % value

    return normalize


def _shape(node, _raw):
    return shape(node)


def _info(node, _raw):
    text = text_of(node)
    if text is None or is_error(node):
        return None
    lines = text.split("\r\n")
    headers = sorted(line for line in lines if line.startswith("# "))
    has_version = any(line.startswith("redis_version:") for line in lines)
    return "%s sections=%s redis_version=%s" % (type_name(node), headers, has_version)


def _client_fields(node, _raw):
    text = text_of(node)
    if text is None or is_error(node):
        return None
    lines = [line for line in text.split("\n") if line.strip()]
    fields = [[part.split("=", 1)[0] for part in line.split(" ")] for line in lines]
    return "%s %r" % (type_name(node), fields)


def _hello(node, _raw):
    kind, items = node
    if not isinstance(items, list) or len(items) % 2:
        return None
    out = []
    for i in range(0, len(items), 2):
        key = text_of(items[i])
        value = items[i + 1]
        out.append("%s=%s" % (key, repr(value) if key == "proto" else shape(value)))
    return "%s{%s}" % (type_name(node), ",".join(out))


def named(name):
    """The normalizer called `name` (with its `:`-separated parameters)."""
    parts = name.split(":")
    simple = {
        "unordered": _unordered,
        "pairs": _pairs,
        "shape": _shape,
        "info": _info,
        "client_fields": _client_fields,
        "hello": _hello,
    }
    if parts[0] == "ttl":
        return _ttl(int(parts[1]), int(parts[2]))
    return simple[parts[0]]


def canonical(name, raw, node):
    """The canonical form of a reply under normalizer `name` (None: exact bytes). A reply the
    normalizer does not apply to (e.g. an error where a map was expected) keeps its bytes."""
    if name is None:
        return repr(raw)
    result = named(name)(node, raw)
    return repr(raw) if result is None else result

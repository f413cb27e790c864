#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets under tests/fuzz/ (tests/fuzz/mqtt/ keeps its own seeds).

    python3 tests/fuzz/make_seeds.py

Deterministic; the output is checked in. Each target's input layout is described at the top of its harness;
the helpers below build inputs in those layouts from readable values. `crash-*` files are reproducers of
reported bugs (see tests/fuzz/README.md): tests/fuzz/run.sh runs them before fuzzing and fails the target while
the bug is there.
"""
import ast
import hashlib
import hmac
import json
import os
import re
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FUZZ_KEY = b"ferry-fuzz-key"  # the key the harnesses give their HMAC decoders


def write(target, name, data):
    d = os.path.join(HERE, target, "corpus")
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def b(s):
    return s.encode() if isinstance(s, str) else s


def be16(n):
    return struct.pack(">H", n)


def props_bytes(props):
    out = b""
    for k, v in props:
        k, v = b(k), b(v)
        out += bytes([len(k), len(v)]) + k + v
    return out


def ce(**attrs):
    """A structured CloudEvent in EventToJson's member order (data last)."""
    order = ["specversion", "id", "source", "type", "time", "subject", "datacontenttype", "ferryseq",
             "ferryingesttime"]
    ev = {"specversion": "1.0"}
    for k in order[1:]:
        if k in attrs:
            ev[k] = attrs.pop(k)
    ev.update(attrs)
    return ev


def js(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()


# ---- ingest_route --------------------------------------------------------------------------------------------

def route_msg(topic, payload=b"", ct=b"", props=(), dup=False, forget=False, twice=False, set_aside=False,
              minutes=0):
    topic, payload, ct = b(topic), b(payload), b(ct)
    flags = (1 if dup else 0) | (2 if forget else 0) | (4 if twice else 0) | (8 if set_aside else 0) | (minutes << 4)
    return (bytes([flags]) + be16(len(topic)) + bytes([len(ct), len(props)]) + be16(len(payload)) + topic + ct +
            props_bytes(props) + payload)


def ingest_route():
    t = "ingest_route"
    write(t, "json_id_field", route_msg("telemetry/dev-7/engine", '{"id":"dev-7/b1/000000001","temp":81.5}',
                                        props=[("site", "hold-2")]))
    write(t, "json_id_property", route_msg("telemetry/dev-1/gps", '{"id":"json-id","lat":1}',
                                           props=[("ce_id", "prop-id"), ("ce_type", "com.example.gps")]))
    write(t, "json_numeric_id", route_msg("telemetry/dev-1/gps", '{"id":12345,"nested":{"id":"inner"}}'))
    write(t, "redelivered_twice", route_msg("telemetry/dev-1/gps", '{"id":"a-1"}', dup=True, twice=True))
    write(t, "bad_json_dead_letter", route_msg("telemetry/dev-2/engine", '{"temp": 81.5,'))
    write(t, "bad_utf8_dead_letter", route_msg("telemetry/dev-2/engine", b'{"s":"\xc3\x28"}'))
    write(t, "too_deep_dead_letter", route_msg("telemetry/dev-9/engine", "[" * 17 + "]" * 17))
    write(t, "oversize_dead_letter", route_msg("telemetry/dev-3/engine", '{"pad":"' + "x" * 1100 + '"}'))
    write(t, "empty_capture", route_msg("telemetry//engine", "{}"))
    write(t, "site_route", route_msg("site/a/x/dev-3/y/z", '{"eventId":"e-1","v":[1,2,3]}',
                                     ct="application/json"))
    write(t, "site_undeclared", route_msg("site/c/x/dev-3", '{"eventId":"e-2"}'))
    write(t, "raw_route", route_msg("raw/engine/x/y", b"\x00\x01\x02\xff", ct="application/octet-stream",
                                    props=[("msg-id", "m-1"), ("Firmware-Version", "1.2")]))
    write(t, "raw_undeclared_drop", route_msg("raw/nope/x", b"bytes"))
    write(t, "no_route", route_msg("other/topic", b"x") + route_msg("$SYS/broker/load", b"1"))
    write(t, "set_aside", route_msg("telemetry/dev-5/engine", b'{"id":"p-1"}', set_aside=True) +
          route_msg("raw/engine/x", b"poison", set_aside=True) + route_msg("nowhere", b"", set_aside=True))
    write(t, "unicode_topic", route_msg("telemetry/d\u00e9v-\u2603/engine", '{"id":"\u00e9-1"}',
                                        props=[("lieu", "\u00e9tage-2")]))
    write(t, "bad_event_id", route_msg("telemetry/dev-1/gps", '{"id":"' + "i" * 300 + '"}') +
          route_msg("telemetry/dev-1/gps", '{"id":"a\\u0001b"}') + route_msg("telemetry/dev-1/gps", '{"id":true}'))
    write(t, "session", route_msg("telemetry/dev-1/gps", '{"id":"s-1"}') +
          route_msg("telemetry/dev-1/gps", '{"id":"s-2"}', minutes=4) +
          route_msg("telemetry/dev-1/gps", '{"id":"s-1"}', dup=True, minutes=4) +
          route_msg("raw/engine/x", b"r", props=[("msg-id", "s-1")], minutes=3) +
          route_msg("telemetry/dev-1/gps", '{"id":"s-1"}', minutes=3))
    # The redelivery window forgets a re-stored id early (README "Reproducers in the corpus"): store, forget
    # (the append failed), store again 5 min later, then a redelivery 11 min after the first store, 6 after the
    # second.
    write(t, "crash-dedupe-forget-reinsert",
          route_msg("telemetry/dev-1/gps", '{"id":"d-1"}', forget=True) +
          route_msg("telemetry/dev-1/gps", '{"id":"d-1"}', minutes=5) +
          route_msg("telemetry/dev-1/gps", '{"id":"d-1"}', dup=True, minutes=6))
    # A dead letter's ferry_dlq_topic header keeps the first 1024 bytes of the topic; it used to cut a UTF-8
    # character in two (fixed). The topic is 13 + 2 x 600 bytes; byte 1024 is the first half of an "\u00e9".
    write(t, "crash-dlq-topic-utf8-cut", route_msg("telemetry/dx/" + "\u00e9" * 600, "{"))


# ---- wire_batch ----------------------------------------------------------------------------------------------

GOLDEN_BODY = [
    ce(id="dev-1/7/41", source="ferry://gw-1/telemetry", type="com.example.telemetry", time="2023-11-14T22:13:20Z",
       subject="dev-1", datacontenttype="application/json", ferryseq="41",
       ferryingesttime="2023-11-14T22:13:20.250000000Z", data={"t": 21.5}),
    ce(id="gw-1/telemetry/42", source="ferry://gw-1/telemetry", type="com.example.raw", subject="dev-2",
       datacontenttype="application/octet-stream", ferryseq="42", ferryingesttime="2023-11-14T22:13:21Z",
       site="north", data_base64="AQID"),
]


def golden_batch():
    with open(os.path.join(ROOT, "tests", "hub", "testdata", "batch_v1.hex")) as f:
        return bytes.fromhex(re.sub(r"\s+", "", f.read()))


def sign(batch, key=b""):
    """docs/wire.md: the digest at 40..71 covers bytes 0-39 and everything from 72 on."""
    msg = batch[:40] + batch[72:]
    digest = hmac.new(key, msg, hashlib.sha256).digest() if key else hashlib.sha256(msg).digest()
    return batch[:40] + digest + batch[72:]


def build_input(body, count, first, span, gateway="gw-1", stream="telemetry", mode=0x04):
    gateway, stream = b(gateway), b(stream)
    return (bytes([mode, count, first, span, len(gateway)]) + gateway + bytes([len(stream)]) + stream +
            (body if isinstance(body, bytes) else js(body)))


def wire_batch():
    t = "wire_batch"
    g = golden_batch()
    assert sign(g) == g, "golden vector's digest"
    hmac_g = sign(g[:5] + b"\x01" + g[6:], FUZZ_KEY)
    write(t, "golden_sha256", b"\x00" + g)
    write(t, "golden_resigned", b"\x02" + g)
    write(t, "golden_hmac", b"\x01" + hmac_g)
    write(t, "golden_hmac_resigned", b"\x03" + hmac_g)
    write(t, "unsigned_but_key_required", b"\x01" + g)
    write(t, "hmac_but_no_key", b"\x00" + hmac_g)
    write(t, "truncated_header", b"\x00" + g[:71])
    write(t, "trailing_byte", b"\x02" + g + b"\x00")
    write(t, "version_2", b"\x02" + g[:4] + b"\x02" + g[5:])
    write(t, "digest_flipped", b"\x00" + g[:50] + bytes([g[50] ^ 1]) + g[51:])
    write(t, "body_flipped", b"\x02" + g[:200] + bytes([g[200] ^ 0x40]) + g[201:])
    write(t, "build_golden_body", build_input(GOLDEN_BODY, 2, 41, 1))
    write(t, "build_golden_body_hmac", build_input(GOLDEN_BODY, 2, 41, 1, mode=0x05))
    write(t, "build_no_content_size", build_input(GOLDEN_BODY, 2, 41, 1, mode=0x0C))
    write(t, "build_body_bytes_plus_one", build_input(GOLDEN_BODY, 2, 41, 1, mode=0x14))
    write(t, "build_count_mismatch", build_input(GOLDEN_BODY, 3, 41, 1))
    write(t, "build_one_event", build_input([ce(id="a", source="s", type="t", ferryseq="7",
                                                ferryingesttime="2024-02-29T12:00:00+02:00")], 1, 7, 0))
    write(t, "build_seq_not_increasing",
          build_input([ce(id="a", source="s", type="t", ferryseq="9", ferryingesttime="2024-01-01T00:00:00Z"),
                       ce(id="b", source="s", type="t", ferryseq="9", ferryingesttime="2024-01-01T00:00:00Z")],
                      2, 9, 0))
    write(t, "build_headers_and_data",
          build_input([ce(id="x", source="s", type="t", datacontenttype="application/cloudevents+json",
                          ferryseq="1", ferryingesttime="2024-01-01T00:00:00.5Z", Firmware="1", firmware="2",
                          data=[1, -0.0, 1e300, "\u00e9", None, True, {"a": {}}])], 1, 1, 0))
    write(t, "build_not_array", build_input(b'{"specversion":"1.0"}', 1, 1, 0))
    write(t, "build_empty_gateway", build_input(GOLDEN_BODY, 2, 41, 1, gateway="", stream=""))
    # Reported bug (README "Reproducers in the corpus"), as the centre meets it: an event time after 2262.
    write(t, "crash-rfc3339-year-overflow",
          build_input([ce(id="a", source="s", type="t", time="2263-01-01T00:00:00Z", ferryseq="1",
                          ferryingesttime="2024-01-01T00:00:00Z")], 1, 1, 0))


# ---- cloudevents ---------------------------------------------------------------------------------------------

def mqtt_input(props, payload=b"", ct=b""):
    ct = b(ct)
    return bytes([2, len(ct)]) + ct + bytes([len(props)]) + props_bytes(props) + b(payload)


def cloudevents():
    t = "cloudevents"
    full = ce(id="dev-1/7/41", source="ferry://gw-1/telemetry", type="com.example.telemetry",
              time="2023-11-14T22:13:20Z", subject="dev-1", datacontenttype="application/json", ferryseq="41",
              ferryingesttime="2023-11-14T22:13:20.250000000Z", site="north", data={"t": 21.5})
    write(t, "event_full", b"\x00" + js(full))
    write(t, "event_minimal", b"\x00" + js(ce(id="a", source="s", type="t")))
    write(t, "event_base64", b"\x00" + js(ce(id="a", source="s", type="t", datacontenttype="image/png",
                                             data_base64="iVBORw0KGgo=")))
    write(t, "event_data_text_ct", b"\x00" + js(ce(id="a", source="s", type="t", datacontenttype="text/plain",
                                                   data="hello")))
    write(t, "event_offsets", b"\x00" + js(ce(id="a", source="s", type="t", time="2023-11-14T23:13:20.5+01:00",
                                              ferryingesttime="1969-12-31T23:59:59.999999999-00:30")))
    write(t, "event_bad_spec", b"\x00" + js(ce(id="a", source="s", type="t", specversion="0.3")))
    write(t, "event_bad_seq", b"\x00" + js(ce(id="a", source="s", type="t", ferryseq="-1")))
    write(t, "event_bad_base64", b"\x00" + js(ce(id="a", source="s", type="t", data_base64="AQI")))
    write(t, "event_non_string_attr", b"\x00" + b'{"specversion":"1.0","id":1,"source":"s","type":"t"}')
    write(t, "event_deep_data", b"\x00" + b'{"specversion":"1.0","id":"a","source":"s","type":"t",'
          b'"datacontenttype":"application/json","data":' + b"[" * 200 + b"]" * 200 + b"}")
    write(t, "batch_golden", b"\x01" + js(GOLDEN_BODY))
    write(t, "batch_empty", b"\x01[]")
    write(t, "batch_mixed", b"\x01" + js([ce(id="a", source="s", type="t"), {"specversion": "1.0"}]))
    write(t, "mqtt_full", mqtt_input([("specversion", "1.0"), ("id", "dev-1/7/41"), ("source", "ferry://gw-1/t"),
                                      ("type", "com.example"), ("time", "2023-11-14T22:13:20Z"),
                                      ("subject", "dev-1"), ("ferryseq", "41"),
                                      ("ferryingesttime", "2023-11-14T22:13:20.25Z"), ("site", "north")],
                                     b'{"t":21.5}', "application/json"))
    write(t, "mqtt_headers", mqtt_input([("specversion", "1.0"), ("id", "i"), ("source", "s"), ("type", "t"),
                                         ("Firmware-Version", "1.2"), ("firmwareversion", "1.3"), ("", "x"),
                                         ("data", "y")], b"\x00\xff", "application/vnd.x+json; charset=utf-8"))
    write(t, "mqtt_missing_id", mqtt_input([("specversion", "1.0"), ("source", "s"), ("type", "t")]))
    for i, s in enumerate(["2023-11-14T22:13:20Z", "2023-11-14t22:13:20.123456789123z", "2023-11-14 22:13:20-05:30",
                           "1970-01-01T00:00:00Z", "2023-02-31T24:00:60Z", "2023-11-14T22:13:20",
                           "application/json", "Application/Problem+JSON ; q=1", "text/json", "+json",
                           "Firmware-Version", "DATA"]):
        write(t, "attr_%02d" % i, b"\x03" + b(s))
    # Reported bugs (README "Reproducers in the corpus").
    write(t, "crash-rfc3339-year-overflow", b"\x03" + b"2263-01-01T00:00:00Z")
    write(t, "crash-rapidjson-zero-exponent",
          b"\x00" + js(ce(id="a", source="s", type="t", datacontenttype="application/json")).rstrip(b"}") +
          b',"data":{"t":0e100}}')
    # A number past the double range, with many digits: the full-precision parser indexes past its table of
    # cached powers of ten (a global out-of-bounds read), then writes a wrong value.
    write(t, "crash-rapidjson-cached-power-oob",
          b"\x00" + js(ce(id="a", source="s", type="t", datacontenttype="application/json")).rstrip(b"}") +
          b',"data":{"t":%s}}' % (b"7770002" + b"9" * 32 + b"7777700000000124814605299999999999999997793251097793251"
                                    b"00000124884461e0259"))
    # A device's JSON payload whose number makes the full-precision parser index its cached powers far out of
    # bounds: SIGSEGV in a GCC -O2 build, in ferryd's batched uplink (CompactJson) and in the centre's decoder.
    write(t, "crash-rapidjson-strtod-segv",
          mqtt_input([("specversion", "1.0"), ("id", "i"), ("source", "s"), ("type", "t")],
                     b'{"t":1' + b"0" * 66 + b'.0000000010000184467e-404}', "application/json"))
    # rapidjson 1.1.0 decodes a lone low surrogate escape into bytes that are not UTF-8, even with
    # kParseValidateEncodingFlag: ingest accepts this payload, and CompactJson writes it into a batch the centre
    # refuses. (An attribute holding one is written back raw too.)
    write(t, "crash-json-lone-surrogate",
          mqtt_input([("specversion", "1.0"), ("id", "i"), ("source", "s"), ("type", "t")], b'{"t":"\\udc00"}',
                     "application/json"))
    write(t, "crash-json-depth-envelope",
          mqtt_input([("specversion", "1.0"), ("id", "i"), ("source", "s"), ("type", "t")],
                     b"[" * 256 + b"]" * 256, "application/json"))


# ---- config --------------------------------------------------------------------------------------------------

def config():
    t = "config"
    for board in sorted(os.listdir(os.path.join(ROOT, "boards"))):
        p = os.path.join(ROOT, "boards", board, "ferry.toml")
        if os.path.exists(p):
            with open(p, "rb") as f:
                write(t, "board_%s.toml" % board, f.read())
    with open(os.path.join(ROOT, "tests", "hub", "config_test.cc")) as f:
        src = f.read()
    write(t, "config_test_full.toml", re.search(r'kFull = R"\((.*?)\)"', src, re.S).group(1))
    for i, m in enumerate(re.finditer(r'BadCase\{("(?:[^"\\]|\\.)*")', src)):
        write(t, "config_test_bad_%02d.toml" % i, ast.literal_eval(m.group(1)))
    write(t, "empty.toml", "")
    write(t, "inline_and_dotted.toml",
          '[storage]\ncommit = { max_events = 10, max_delay = "1ms" }\n'
          '[ingest]\nmode = "both"\nlisten.address = "0.0.0.0:1883"\nlisten.max_connections = 100\n'
          'backoff = { min = "100ms", max = "1m" }\n'
          '[[stream]]\nname = "s-1"\nkind = "table"\ntombstone_grace = "1h30m15s"\n'
          '[[uplink]]\nname = "kafka-1"\ntype = "kafka"\naddress = "broker:9092"\nstreams = ["s-1"]\n'
          'topic = "{gateway}.{stream}.{{x}}"\n')
    write(t, "routes.toml",
          '[[stream]]\nname = "a"\n[[stream]]\nname = "dlq"\n'
          '[[route]]\nfilter = "$share/{g}/+/#"\nstream = "a"\nsubject = "{g}-{topic}"\ndead_letter = "dlq"\n'
          '[[route]]\nfilter = "{x}"\nstream = "{x}"\n')
    write(t, "strings.toml",
          "[gateway]\nid = 'literal'\n[storage]\npath = \"\"\"\nmulti\\\n   line\"\"\"\n"
          "map_size = 1_073_741_824\n[log]\nlevel = \"\\u0064ebug\"\n")
    # Reported bugs (README "Reproducers in the corpus").
    write(t, "crash-toml-nonascii-key", '[storage]\npath = "/var/lib/ferry"\nm\u00e4p_size = "1GiB"\n')
    write(t, "crash-toml-deep-dotted-key", "a." * 100000 + "a = 1\n")


# ---- storage_record ------------------------------------------------------------------------------------------

def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def mask(crc):
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def record(seq, ingest_ns, time_ns=0, id=b"", source=b"", type=b"", subject=b"", ct=b"", headers=(),
           payload=b"", version=1, flags=0, reserved=0):
    attrs = [b(id), b(source), b(type), b(subject), b(ct)]
    body = b"".join(attrs)
    for k, v in headers:
        k, v = b(k), b(v)
        body += struct.pack("<HH", len(k), len(v)) + k + v
    payload = b(payload)
    body += payload
    head = struct.pack("<BBHIIIQqqHHHHHHI", version, flags, 56, 0, len(body), len(payload), seq, ingest_ns,
                       time_ns, *[len(a) for a in attrs], len(headers), reserved)
    rec = head + body
    return rec[:4] + struct.pack("<I", mask(crc32c(rec[8:]))) + rec[8:]


def storage_record():
    t = "storage_record"
    full = record(42, 1700000000250000000, 1700000000000000000, "dev-1/b1/000000001", "telemetry/dev-1/gps",
                  "ferry.mqtt", "dev-1", "application/json", [("site", "north"), ("ferry_dlq_reason", "")],
                  b'{"lat":1}')
    write(t, "full", b"\x00" + full)
    write(t, "minimal", b"\x00" + record(42, 1))
    write(t, "tombstone", b"\x00" + record(42, 5, subject="key-1"))
    write(t, "seq_from_header", b"\x02" + record(7, 1, id="x"))
    write(t, "wrong_seq", b"\x00" + record(43, 1))
    write(t, "crc_flipped", b"\x00" + full[:4] + bytes([full[4] ^ 1]) + full[5:])
    write(t, "truncated", b"\x00" + full[:-1])
    write(t, "truncated_header", b"\x00" + full[:40])
    write(t, "version_2", b"\x00" + record(42, 1, version=2))
    write(t, "flags", b"\x00" + record(42, 1, flags=1))
    write(t, "header_size_64", b"\x00" + full[:2] + struct.pack("<H", 64) + full[4:])
    write(t, "fixup_sizes_lie", b"\x01" + full[:40] + struct.pack("<H", 0xFFFF) + full[42:])
    write(t, "fixup_many_headers", b"\x01" + full[:50] + struct.pack("<H", 0xFFFF) + full[52:])
    write(t, "reserved_nonzero", b"\x00" + record(42, 1, reserved=0xDEADBEEF))
    meta = struct.pack("<BBBBiQQQQqqQqQ4Q", 1, 1, 1, 0, -5, 10, 3, 7, 700, 1700000000000000000, 0, 0,
                       3600000000000, 3, 1, 2, 3, 4)
    assert len(meta) == 112
    write(t, "stream_meta", b"\x00" + meta)
    write(t, "stream_meta_v2", b"\x00" + b"\x02" + meta[1:])


# ---- firmware_boot -------------------------------------------------------------------------------------------

def boot_line(text):
    return "%s %08x\n" % (text, zlib.crc32(text.encode()))


def firmware_boot():
    t = "firmware_boot"
    write(t, "boot_1", boot_line("ferry-boot 1 1"))
    write(t, "boot_12345", boot_line("ferry-boot 1 12345"))
    write(t, "boot_max_minus_1", boot_line("ferry-boot 1 4294967294"))
    write(t, "boot_exhausted", boot_line("ferry-boot 1 4294967295"))
    write(t, "boot_zero", boot_line("ferry-boot 1 0"))
    write(t, "boot_too_big", boot_line("ferry-boot 1 4294967296"))
    write(t, "boot_version_2", boot_line("ferry-boot 2 7"))
    write(t, "boot_bad_crc", "ferry-boot 1 7 00000000\n")
    write(t, "boot_no_newline", boot_line("ferry-boot 1 7")[:-1])
    write(t, "boot_torn", boot_line("ferry-boot 1 7")[:9])
    write(t, "boot_nul", b"ferry-boot 1 7\x00 12345678\n")
    write(t, "boot_63_bytes", boot_line("ferry-boot 1 " + "0" * 40 + "7"))
    write(t, "boot_64_bytes", boot_line("ferry-boot 1 " + "0" * 41 + "7"))
    write(t, "empty", b"")


# ---- central_receiver ----------------------------------------------------------------------------------------

def central_msg(payload=b"", ct=b"", topic="ferry/gw-1/telemetry", props=()):
    ct, topic, payload = b(ct), b(topic), b(payload)
    return bytes([len(ct), len(topic), len(props)]) + be16(len(payload)) + ct + topic + props_bytes(props) + payload


def central_receiver():
    t = "central_receiver"
    g = golden_batch()
    hmac_g = sign(g[:5] + b"\x01" + g[6:], FUZZ_KEY)
    per_event = [("specversion", "1.0"), ("id", "dev-1/b1/000000001"), ("source", "telemetry/dev-1/gps"),
                 ("type", "ferry.mqtt"), ("subject", "dev-1"), ("ferryseq", "1"),
                 ("ferryingesttime", "2023-11-14T22:13:20Z"), ("site", "north")]
    write(t, "per_event", b"\x00" + central_msg(b'{"lat":1}', "application/json", props=per_event))
    write(t, "per_event_duplicate", b"\x00" + central_msg(b"1", props=per_event) * 2)
    write(t, "batch", b"\x00" + central_msg(g, "application/vnd.ferry.batch.v1"))
    write(t, "batch_then_again", b"\x00" + central_msg(g, "application/vnd.ferry.batch.v1") * 2)
    write(t, "batch_hmac", b"\x02" + central_msg(hmac_g, "application/vnd.ferry.batch.v1"))
    write(t, "batch_resigned", b"\x08" + central_msg(g[:300] + b"\x00" + g[301:], "application/vnd.ferry.batch.v1"))
    write(t, "device_json", b"\x01" + central_msg(b'{"id":"dev-1/b1/000000002","temp":21}', topic="telemetry/dev-1")
          + central_msg(b'{"id":18446744073709551615}') + central_msg(b'{"id":""}') + central_msg(b"[1]"))
    write(t, "device_json_not_accepted", b"\x00" + central_msg(b'{"id":"x"}'))
    write(t, "hashed_ids",
          b"\x04" + central_msg(b"", props=per_event) + central_msg(g, "application/vnd.ferry.batch.v1"))
    write(t, "bad_per_event", b"\x00" + central_msg(b"", props=[("specversion", "0.3"), ("id", "i")]))
    # Reported bug (README "Reproducers in the corpus"): a per-event message whose time property is after 2262.
    write(t, "crash-rfc3339-year-overflow",
          b"\x00" + central_msg(b"", props=per_event + [("time", "2263-01-01T00:00:00Z")]))


# ---- dictionaries (libFuzzer -dict): tokens a mutation is unlikely to spell by itself ------------------------

def dict_file(target, words):
    def quote(w):
        return '"' + "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "\\x%02x" % ord(c) for c in w) + '"'
    path = os.path.join(HERE, target, target + ".dict")
    with open(path, "w") as f:
        f.write("# Generated by tests/fuzz/make_seeds.py.\n")
        for w in sorted(set(words)):
            f.write(quote(w) + "\n")


CE_WORDS = ["specversion", "1.0", "id", "source", "type", "time", "subject", "datacontenttype", "data",
            "data_base64", "ferryseq", "ferryingesttime", "application/json", "text/json", "+json",
            "application/octet-stream", "; charset=utf-8", "T00:00:00Z", "2023-11-14T22:13:20", ".000000001",
            "+01:00", "-23:59", "==", "\\u0000", "\\ud800", "1e308", "-0", "0e100", "18446744073709551615"]


def dicts():
    with open(os.path.join(ROOT, "hub", "config", "src", "config_keys.cc")) as f:
        keys_src = f.read()
    words = ["[", "]", "[[", "]]", "=", '"""', "'''", "true", "false", "{", "}", ",", ".", "#", "\\", "\n", "0",
             "-1", "9223372036854775807", "1_000", "0x10", "1e3", "inf", "nan", "1979-05-27T07:32:00Z", "ns", "us",
             "ms", "s", "m", "h", "d", "B", "kB", "KiB", "MiB", "GiB", "TiB", "tcp://", "ssl://", "mqtts://", "ws://",
             "wss://", "127.0.0.1:1883", "{device}", "{topic}", "{{", "}}", "+", "/#"]
    for section, name in re.findall(r'\w+\("([a-z_]+)", "([a-z_.]+)"', keys_src):
        words += [section, name] + name.split(".")
    for allowed in re.findall(r'"([a-z_]+(?:\|[a-z_]+)+)"', keys_src):
        words += allowed.split("|")
    dict_file("config", words)
    dict_file("cloudevents", CE_WORDS)
    dict_file("wire_batch", CE_WORDS + ["FRYB", "\x28\xb5\x2f\xfd"])
    dict_file("central_receiver", CE_WORDS + ["application/vnd.ferry.batch.v1", "FRYB"])
    dict_file("http_head", ["GET", "HEAD", "POST", " HTTP/1.1", " HTTP/1.0", "\r\n", "Host: ", "%2F", "?", "&", "="])
    dict_file("ingest_route", ["telemetry/", "site/", "raw/", "/#", "$SYS/", "ce_id", "ce_type", "msg-id",
                               '"id":', '"eventId":', "application/json", "+json", "engine", "dead", "site-a"])


# ---- http_head -----------------------------------------------------------------------------------------------

def http_head():
    t = "http_head"
    write(t, "get_metrics", "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9464\r\nUser-Agent: Prometheus/2.45.0\r\n"
          "Accept: text/plain;version=0.0.4;q=1,*/*;q=0.1\r\nX-Prometheus-Scrape-Timeout-Seconds: 10")
    write(t, "head_healthz_query", "HEAD /healthz?verbose=1&a=x%20y+z&%zz HTTP/1.0\nConnection: close")
    write(t, "post", "POST /metrics HTTP/1.1\r\nContent-Length: 4")
    write(t, "http2", "GET / HTTP/2.0")
    write(t, "folded", "GET / HTTP/1.1\r\nA: b\r\n  c")
    write(t, "nul_in_target", b"GET /a\x00b HTTP/1.1")
    write(t, "empty", b"")


if __name__ == "__main__":
    dicts()
    ingest_route()
    wire_batch()
    cloudevents()
    config()
    storage_record()
    firmware_boot()
    central_receiver()
    http_head()

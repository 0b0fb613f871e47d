"""The shared mechanisms that keep hostile input harmless, as plain Python: the strict number
parser, bounded public-safe messages, the egress policy (spellings of addresses, names that
resolve where they should not, the mesh's own ports), URL and host:port parsing, the bounded
HTTP body reader, lanes, and closed metric label sets."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import time
import zlib

import pytest
from prometheus_client import CollectorRegistry

from services.common.errors import DestinationDeniedError, MeshError, OverloadedError, ValidationError
from services.common.lanes import Lane
from services.common.messages import MAX_MESSAGE_CHARS, quoted
from services.common.numbers import strict_float, strict_int, strict_port
from services.pipeline.allowlist import Allowlist
from services.pipeline.egress import Egress, parse_host
from services.pipeline.metrics import PipelineMetrics
from services.pipeline.tools import CATALOGUE
from services.pipeline.tools.base import ToolContext
from services.pipeline.tools.http_body import MAX_DECODED_BYTES, MAX_RAW_BYTES, Body, read_body
from services.pipeline.tools.http_check import parse_url, public_location
from services.pipeline.tools.network import host_port
from tests.unit.fakes import FakeResolver

DEFAULT_ALLOWLIST = ["127.0.0.0/8", "::1", "localhost"]

# --- numbers ------------------------------------------------------------------------------------

NOT_NUMBERS = ["²", "³", "٣", "１２", "①", "1_000", " 1", "1 ", "+1", "0x10", "1e3", "", "-", "--1", "9" * 5000,
               "9" * 13, "1.5", "inf", "nan", "١٢٣", "\u0661", "12\x00"]


@pytest.mark.parametrize("text", NOT_NUMBERS)
def test_only_plain_ascii_digits_of_bounded_length_are_integers(text):
    assert strict_int(text) is None


def test_strict_numbers_read_what_they_should():
    assert (strict_int("0"), strict_int("-12"), strict_int("0042"), strict_int("9" * 12)) == (0, -12, 42, 10**12 - 1)
    assert strict_float("1.5") == 1.5 and strict_float("1e5") is None and strict_float("1.") is None
    assert [strict_port(p) for p in ("1", "65535", "0", "65536", "-1", "²", "080")] == [1, 65535, None, None,
                                                                                         None, None, 80]


# --- messages -----------------------------------------------------------------------------------

def test_quoted_input_is_a_short_escaped_prefix():
    assert quoted("9" * 4096) == repr("9" * 40) + "…"
    assert quoted("a\nb\x00c\u202e") == "'a\\nb\\x00c\\u202e'"


def test_every_domain_error_is_bounded_whatever_it_was_given():
    extra = {f"k{i}": "v" for i in range(50)}
    error = ValidationError("x" * 100_000 + "\r\nInjected: header", field="y" * 5000, **extra)
    assert len(error.message) <= MAX_MESSAGE_CHARS and "\n" not in error.message and "\r" not in error.message
    assert len(error.metadata) <= 8 and all(len(value) <= 100 for value in error.metadata.values())


# --- egress: spellings that must never reach anything, and never cause a lookup -----------------

SPELLINGS = [
    # other ways to write 127.0.0.1 or 0.0.0.0
    "0177.0.0.1", "0x7f.0.0.1", "2130706433", "017700000001", "0x7f000001", "127.1", "127.0.1", "0", "0.0.0.0",
    "0.0.0.0.", "127.0.0.1.", "127.000.000.001",
    # IPv6 forms that carry an IPv4 address, and the unspecified address
    "[::]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:7f00:1]", "[64:ff9b::7f00:1]",
    "[64:ff9b::a9fe:a9fe]", "[64:ff9b:1::7f00:1]", "[2002:7f00:1::]", "[::127.0.0.1]", "[::ffff:169.254.169.254]",
    "[2001::1]",
    # metadata, link-local, private, shared, multicast and broadcast addresses
    "169.254.169.254", "[fd00:ec2::254]", "[fe80::1]", "[fe80::1%25lo]", "[fe80::1%lo]", "10.0.0.1", "192.168.0.1",
    "172.16.0.1", "100.64.0.1", "224.0.0.1", "255.255.255.255",
    # unicode, full-width, NUL, userinfo, names around listed ones
    "１２７.０.０.１", "127。0。0。1", "ⓛocalhost", "localhost\x00", "127.0.0.1\x00.evil.example", "user@127.0.0.1",
    "127.0.0.1@evil.example", "localhost.evil.example", "evil-localhost", "localhost..", ".localhost",
    "metadata.google.internal", "127.0.0.1.nip.io",
]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_a_spelling_of_a_denied_destination_is_refused_before_any_lookup(spelling):
    resolver = FakeResolver({"localhost": ("127.0.0.1",)})
    egress = Egress(Allowlist(DEFAULT_ALLOWLIST), resolver)

    async def attempt() -> None:
        await egress.destination(parse_host(spelling), 80, 1.0)

    with pytest.raises((ValidationError, DestinationDeniedError)):
        asyncio.run(attempt())
    assert resolver.asked == []


def test_there_are_enough_spellings():
    assert len(SPELLINGS) >= 43


def destination(allowlist: list[str], table: dict[str, tuple[str, ...]], host: str, port: int = 80,
                mesh_ports: tuple[int, ...] = ()):
    egress = Egress(Allowlist(allowlist), FakeResolver(table), mesh_ports)
    return asyncio.run(egress.destination(parse_host(host), port, 1.0))


def test_a_listed_name_reaches_only_addresses_a_listed_network_holds_or_public_ones():
    table = {"rebind.test": ("127.0.0.2",), "inside.test": ("127.0.0.1",), "mixed.test": ("10.0.0.5", "127.0.0.1"),
             "private.test": ("10.0.0.5", "192.168.1.1"), "public.test": ("93.184.216.34",),
             "mapped.test": ("::ffff:127.0.0.1",)}
    allow = ["127.0.0.1/32", "*.test"]
    assert destination(allow, table, "inside.test").addresses == (ipaddress.ip_address("127.0.0.1"),)
    assert destination(allow, table, "INSIDE.test.").addresses == (ipaddress.ip_address("127.0.0.1"),)
    assert destination(allow, table, "mixed.test").addresses == (ipaddress.ip_address("127.0.0.1"),)
    assert destination(allow, table, "public.test").addresses == (ipaddress.ip_address("93.184.216.34"),)
    for name in ("rebind.test", "private.test", "mapped.test"):
        with pytest.raises(DestinationDeniedError) as denied:
            destination(allow, table, name)
        assert "127.0.0.2" not in denied.value.message and "10.0.0.5" not in denied.value.message


def test_the_mesh_s_own_ports_are_refused_on_every_address_whatever_the_allowlist():
    for host in ("127.0.0.1", "localhost", "[::1]", "10.1.2.3"):
        with pytest.raises(DestinationDeniedError, match="mesh's own ports"):
            destination(["0.0.0.0/0", "::/0", "localhost"], {"localhost": ("127.0.0.1",)}, host, 9901,
                        mesh_ports=(9901, 9090))
    assert destination(["127.0.0.0/8"], {}, "127.0.0.1", 9902, mesh_ports=(9901,)).port == 9902


# --- URLs and host:port -------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "http://127.0.0.1:abc/", "http://[::1/", "http://127.0.0.1:²/", "http://127.0.0.1:0/", "http://127.0.0.1:65536/",
    "http://127.0.0.1:99999999999999999999/", "http://a b/", "http://127.0.0.1/\x07", "http://127.0.0.1/\x00",
    "http://user:pw@127.0.0.1/", "http://:80/", "http:///x", "ftp://127.0.0.1/", "http://127.0.0.1:８０/",
    "http://[127.0.0.1]/", "http://[fe80::1%25lo]/", "http://127.0.0.1/ä", "javascript:alert(1)",
])
def test_a_malformed_url_is_invalid_argument(url):
    with pytest.raises(ValidationError) as refused:
        parse_url(url)
    assert refused.value.metadata["field"] == "input" and len(refused.value.message) < 200


def test_urls_keep_path_and_query_but_show_neither_query_nor_userinfo():
    target = parse_url("HTTP://[::1]:8080/a/b?token=SECRET#frag")
    assert (target.scheme, str(target.host.address), target.port, target.path) == ("http", "::1", 8080,
                                                                                  "/a/b?token=SECRET")
    assert "SECRET" not in target.shown and parse_url("https://Example.COM").port == 443
    assert public_location("https://u:p@elsewhere.example:8443/next?token=SECRET#x") == \
        "https://elsewhere.example:8443/next"
    assert public_location("/relative?token=SECRET") == "/relative"


@pytest.mark.parametrize("text", ["127.0.0.1:²", "127.0.0.1:", ":80", "::1:80", "127.0.0.1:0", "127.0.0.1:-1",
                                  "127.0.0.1:1e3", "[::1:80", "127.0.0.1:80\x00"])
def test_a_malformed_host_port_is_invalid_argument(text):
    with pytest.raises(ValidationError):
        host_port(text)


# --- HTTP bodies ---------------------------------------------------------------------------------

async def chunks_of(data: bytes, size: int = 65536):
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def endless(chunk: bytes):
    while True:
        yield chunk


def read(chunks, encoding: str) -> Body:
    body = Body()
    asyncio.run(read_body(chunks, encoding, body))
    return body


def test_a_decompression_bomb_is_decoded_only_up_to_the_cap_in_small_steps():
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), 9)
    assert len(bomb) < 100_000
    started = time.process_time()
    body = read(chunks_of(bomb), "gzip")
    assert body.decoded_bytes == MAX_DECODED_BYTES and body.truncated and body.raw_bytes <= len(bomb)
    assert time.process_time() - started < 0.5
    deflated = zlib.compress(b"\0" * (64 * 1024 * 1024), 9)
    assert read(chunks_of(deflated), "deflate").decoded_bytes == MAX_DECODED_BYTES


def test_raw_bytes_are_capped_and_unknown_encodings_are_counted_on_the_wire_only():
    assert read(endless(b"x" * 65536), "").raw_bytes == MAX_RAW_BYTES
    body = read(chunks_of(b"y" * 1000), "br")
    assert (body.raw_bytes, body.decoded_bytes, body.truncated) == (1000, None, False)
    assert read(chunks_of(b"not gzip at all"), "gzip").decoded_bytes is None
    small = read(chunks_of(gzip.compress(b"hello")), "GZIP")
    assert small.decoded_bytes == 5 and not small.truncated


# --- lanes, time budgets, labels ----------------------------------------------------------------

def test_a_full_lane_refuses_at_once_and_frees_its_places():
    lane = Lane("slow things", 2)
    with lane.place(), lane.place():
        with pytest.raises(OverloadedError) as refused:
            with lane.place():
                pass
        assert isinstance(refused.value, MeshError) and refused.value.reason == "OVERLOADED"
    with lane.place():
        assert lane.in_use == 1


def test_a_tool_s_time_budget_ends_before_its_call_s_deadline():
    context = ToolContext(Egress(Allowlist([]), None))
    assert context.budget(2.0) == 2.0
    assert 0 < ToolContext(context.egress, time_left_s=1.0).budget(2.0) < 1.0
    assert ToolContext(context.egress, time_left_s=0.001).budget(2.0) == 0.0


def test_made_up_platforms_share_one_label_value():
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry, [tool.name for tool in CATALOGUE], ["darwin", "linux"])
    assert [metrics.platform_label(p) for p in ("linux", "darwin", "windows", "zz_top")] == ["linux", "darwin",
                                                                                         "other", "other"]


def test_a_pipeline_refuses_its_own_ports_and_every_mesh_port_it_is_told():
    from services.common.config import ConfigError, pipeline_config

    config = pipeline_config({"PIPELINE_GRPC_ADDR": "127.0.0.1:8123", "PIPELINE_METRICS_ADDR": "127.0.0.1:9123",
                              "MESH_PORTS": "3000, 9901,9902"})
    assert config.mesh_ports == (3000, 8123, 9123, 9901, 9902)
    assert pipeline_config({}).mesh_ports == (8001, 9092)
    for bad in ("80,x", "0", "65536", "²", "-1"):
        with pytest.raises(ConfigError, match="MESH_PORTS"):
            pipeline_config({"MESH_PORTS": bad})

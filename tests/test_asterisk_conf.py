"""The Asterisk config reader against real files and the syntax Asterisk accepts."""

from __future__ import annotations

import os
import shutil

import pytest

from helpers import DATA
from pbx_bridge.asterisk import pjsip
from pbx_bridge.asterisk.conf import read_config
from pbx_bridge.host import FileSystem

A22 = DATA / "asterisk-22" / "etc-asterisk"
FPBX = DATA / "freepbx-real" / "etc-asterisk"


def read(tmp_path, files: dict[str, str | bytes], name: str = "pjsip.conf"):
    for n, text in files.items():
        p = tmp_path / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text.encode() if isinstance(text, str) else text)
    return read_config(FileSystem(tmp_path), name)


def test_real_asterisk22_tree_templates_and_repeated_names():
    cfg = read_config(FileSystem(A22), "pjsip.conf")
    assert cfg.problems == []
    alexa = [s for s in cfg.named("alexa")]
    assert [s.value("type") for s in alexa] == ["endpoint", "aor", "identify"]
    ep = pjsip.endpoint(cfg, "alexa")
    assert ep is not None and ep.templates == ("endpoint-defaults",)
    enc = ep.get("media_encryption")
    assert enc is not None and enc.value == "sdes"
    # the value comes from the template, and remembers the template's line
    assert str(enc.where).endswith("pjsip.conf:24")
    assert ep.get("aors").where.line == 32
    # ';' starts a comment, as in Asterisk: contact loses ';transport=tls'
    assert alexa[1].value("contact") == "sip:127.0.0.1:5071"
    tls = [t for t in pjsip.transports(cfg) if t.protocol == "tls"]
    assert [(t.name, t.host, t.port) for t in tls] == [("transport-tls", "127.0.0.1", 5061)]
    # matches what the real Asterisk listed
    shown = (DATA / "asterisk-22" / "cli-pjsip-show-transports.txt").read_text()
    for t in pjsip.transports(cfg):
        assert f"{t.name}" in shown and f"{t.host}:{t.port}" in shown


def test_real_freepbx_tree_follows_includes_in_order():
    cfg = read_config(FileSystem(FPBX), "pjsip.conf")
    assert cfg.problems == []
    names = [os.path.basename(s.path) for s in cfg.sources]
    assert names[:4] == ["pjsip.conf", "pjsip_custom.conf", "pjsip.transports.conf",
                         "pjsip.transports_custom.conf"]
    assert names[-1] == "pjsip_custom_post.conf"
    assert len(names) == 21
    assert len(pjsip.objects(cfg, "endpoint")) == 6  # what the real Asterisk loaded
    assert [t.name for t in pjsip.transports(cfg)] == ["0.0.0.0-udp"]
    # UTF-8 caller names survive
    ep = pjsip.endpoint(cfg, "30")
    assert ep is not None and ep.value("callerid") == "Băng <30>"


def test_missing_include_is_an_error_and_tryinclude_is_not(tmp_path):
    d = tmp_path / "a"
    shutil.copytree(FPBX, d)
    (d / "pjsip.aor_custom_post.conf").unlink()
    cfg = read_config(FileSystem(d), "pjsip.conf")
    errs = cfg.errors
    assert len(errs) == 1 and "does not exist" in errs[0].message
    assert str(errs[0].where).endswith("pjsip.conf:15")
    cfg2 = read(tmp_path / "b", {"pjsip.conf": "#tryinclude nothere.conf\n[x]\ntype=aor\n"})
    assert cfg2.problems == [] and cfg2.named("x")


def test_syntax_variants(tmp_path):
    text = (
        "; comment\r\n"
        "[base](!)\r\n"
        "type=endpoint\r\n"
        "allow = ulaw ; trailing comment\r\n"
        ";-- a block comment\r\n"
        "[not-a-section]\r\n"
        "   still comment --;\r\n"
        "[other](!)\r\n"
        "context=rooms\r\n"
        "[ep](base,other)\r\n"
        "callerid => Room\\;204\r\n"
        "[ep](+)\r\n"
        "dtmf_mode=rfc4733\r\n"
        "[a] ;-- inline block --; \r\n"
        "type=aor\r\n"
    )
    cfg = read(tmp_path, {"pjsip.conf": text})
    assert cfg.problems == []
    assert [s.name for s in cfg.sections] == ["base", "other", "ep", "a"]
    ep = cfg.named("ep")[0]
    assert ep.templates == ("base", "other")
    assert ep.value("type") == "endpoint" and ep.value("context") == "rooms"
    assert ep.value("allow") == "ulaw"
    cid = ep.get("callerid")
    assert cid.value == "Room;204" and cid.arrow and cid.where.line == 11
    assert ep.get("dtmf_mode").where.line == 13
    assert not cfg.named("not-a-section")


def test_latin1_bytes_are_read_not_rejected(tmp_path):
    cfg = read(tmp_path, {"pjsip.conf": b"[r]\ntype=endpoint\ncallerid=Chambre \xe9t\xe9 <7204>\n"})
    assert cfg.problems == []
    assert cfg.named("r")[0].value("callerid") == "Chambre été <7204>"
    assert cfg.sources[0].encoding == "latin-1"


def test_include_glob_relative_to_config_dir(tmp_path):
    cfg = read(tmp_path, {
        "pjsip.conf": '#include "rooms/*.conf"\n',
        "rooms/b.conf": "[b]\ntype=aor\n",
        "rooms/a.conf": "[a]\ntype=aor\n",
    })
    assert [s.name for s in cfg.sections] == ["a", "b"]
    assert cfg.sections[0].where.file.endswith("rooms/a.conf")


def test_exec_is_reported_never_run(tmp_path):
    marker = tmp_path / "ran"
    cfg = read(tmp_path, {"pjsip.conf": f"#exec touch {marker}\n[x]\ntype=aor\n"})
    assert not marker.exists()
    assert [p.severity for p in cfg.problems] == ["warning"]
    assert "#exec" in cfg.problems[0].message and "not run" in cfg.problems[0].message


def test_include_loop_is_reported_and_stops(tmp_path):
    cfg = read(tmp_path, {"pjsip.conf": "#include a.conf\n",
                          "a.conf": "[a]\ntype=aor\n#include pjsip.conf\n"})
    assert [s.name for s in cfg.sections] == ["a"]
    assert any("include loop" in p.message for p in cfg.errors)


def test_directory_where_a_file_should_be(tmp_path):
    (tmp_path / "inc.conf").mkdir()
    cfg = read(tmp_path, {"pjsip.conf": "#include inc.conf\n[x]\ntype=aor\n"})
    assert any("is a directory" in p.message for p in cfg.errors)
    assert cfg.named("x")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_a_problem(tmp_path):
    cfg0 = read(tmp_path, {"pjsip.conf": "#include secret.conf\n", "secret.conf": "[s]\n"})
    assert cfg0.problems == []
    (tmp_path / "secret.conf").chmod(0)
    cfg = read_config(FileSystem(tmp_path), "pjsip.conf")
    assert any("permission denied" in p.message for p in cfg.errors)


@pytest.mark.parametrize("text,message,severity", [
    ("type=aor\n", "setting outside any [section]", "error"),
    ("[x]\njust words\n", "no '=' in line", "warning"),
    ("[x\ntype=aor\n", "without ']'", "error"),
    ("[y](nosuch)\ntype=aor\n", "not defined before it", "error"),
    ("[z](+)\ntype=aor\n", "does not exist", "error"),
    ("[x]\n;-- never closed\n", "never closed", "warning"),
])
def test_broken_syntax_becomes_a_located_problem(tmp_path, text, message, severity):
    cfg = read(tmp_path, {"pjsip.conf": text})
    assert len(cfg.problems) == 1
    p = cfg.problems[0]
    assert message in p.message and p.severity == severity
    assert p.where is not None and p.where.file.endswith("pjsip.conf")


def test_every_value_remembers_file_and_line_across_includes(tmp_path):
    cfg = read(tmp_path, {"pjsip.conf": "[t]\ntype=transport\n#include more.conf\nbind=1.2.3.4\n",
                          "more.conf": "\n\nprotocol=tls\n"})
    t = cfg.named("t")[0]
    assert str(t.get("protocol").where).endswith("more.conf:3")
    assert str(t.get("bind").where).endswith("pjsip.conf:4")


LAZY = """\
[general]
a = 1
b=>2 ; comment
 c = three words  \r
[tpl](!)
type=endpoint
allow=ulaw
[one](tpl)
auth_type=userpass
type = aor
type=endpoint
 types = no
key with space = v
;-- a block
type=hidden
--;
after=block
[one](+)
type=>appended
[two]
x=1
"""


def test_sections_read_lazily_give_exactly_what_line_by_line_reading_gives(tmp_path):
    """Runs of plain lines are kept as text until looked into: a section's get() before
    and after its settings are parsed, and the settings themselves, are the same."""
    import copy
    (tmp_path / "t.conf").write_text(LAZY)
    cfg = read_config(FileSystem(tmp_path), "t.conf")
    fresh = copy.deepcopy(cfg)
    keys = ("a", "b", "c", "type", "allow", "auth_type", "types", "key with space", "after",
            "x", "nosuch", "ty", "type ")
    looked = {(s.name, k): s.get(k) for s in fresh.sections for k in keys}  # lazily
    parsed = {(s.name, k): (s.own, s.get(k))[1] for s in cfg.sections for k in keys}
    assert looked == parsed
    one = cfg.named("one")[0]
    assert [(x.key, x.value, x.line, x.arrow) for x in one.own] == [
        ("auth_type", "userpass", 9, False), ("type", "aor", 10, False),
        ("type", "endpoint", 11, False), ("types", "no", 12, False),
        ("key with space", "v", 13, False), ("after", "block", 17, False),
        ("type", "appended", 19, True)]
    assert one.get("type").value == "appended" and one.get("type").line == 19
    gen = cfg.named("general")[0]
    assert [(x.key, x.value, x.arrow) for x in gen.own] == [("a", "1", False), ("b", "2", True),
                                                           ("c", "three words", False)]
    assert [s.name for s in fresh.of_type("appended")] == ["one"]  # its last type, lazily
    assert [s.name for s in cfg.of_type("endpoint")] == []


FRAGMENTS = [
    "[s1]", "[s1](!)", "[s2](s1)", "[s1](+)", "[s2](+)", " [s3]", "\t[s3](s1,s2)", "[bad",
    "[s4] junk", "[k=v]", "#tryinclude x=y.conf", "[s5](!) ; tpl", "\xa0[s6]", "type=endpoint", "type = aor", "type=>identify",
    "types=x", " type=indented", "\ttype=tab", "type ", "key with space=v", "k[x]=v", "k#=v",
    "#include inc.conf", "#tryinclude nosuch.conf", "#exec /bin/true", "#bogus", "novalue",
    "=empty", "a=b=c", "x => y", "x=y ; comment", ";-- block", "inside --; after=1",
    "x=a\\;b", "", "", "", "   ", "\t", "v=\u20ac uro", "w=caf\xe9", "type=endpoint\r", "\r",
    "y=1 ;-- open", "--;", "z=\x85", "match=3.239.178.128/25", "; plain comment",
]


def _fuzz_text(rng) -> str:
    return "\n".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 40))) + \
        rng.choice(["", "\n", "\n\n"])


def _snapshot(cfg, keys):
    types = {t: [s.name for s in cfg.of_type(t)] for t in ("endpoint", "aor", "identify", "")}
    looked = [[s.get(k) for k in keys] for s in cfg.sections]  # before settings are parsed
    return (types, looked, [(s.name, s.where, s.is_template, s.templates, s.settings)
                     for s in cfg.sections], cfg.problems)


def test_fast_scan_reads_exactly_what_line_by_line_reading_reads(tmp_path, monkeypatch):
    """The reader finds the lines that are not plain settings by scanning a copy of the text
    reduced to character classes (or, for a text with characters past U+00FF, with a
    regex). 400 random files mixing every syntax the reader knows, and the real trees, read
    the same as when every line is read one by one (no runs kept as text)."""
    import random
    from pbx_bridge.asterisk import conf as asterisk_conf
    rng = random.Random(13)
    keys = ("type", "types", "x", "a", "k[x]", "key with space", "", "nosuch", "y", "match")
    cases = [(FPBX, "pjsip.conf"), (A22, "pjsip.conf"), (A22, "extensions.conf")]
    for i in range(400):
        d = tmp_path / str(i)
        d.mkdir()
        (d / "pjsip.conf").write_text(_fuzz_text(rng), encoding="utf-8")
        (d / "inc.conf").write_text(_fuzz_text(rng), encoding="utf-8")
        cases.append((d, "pjsip.conf"))
    fast = [_snapshot(read_config(FileSystem(d), n), keys) for d, n in cases]
    every_line = lambda text: [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]  # noqa
    monkeypatch.setattr(asterisk_conf, "_special_starts", every_line)
    slow = [_snapshot(read_config(FileSystem(d), n), keys) for d, n in cases]
    for (d, n), f, s in zip(cases, fast, slow):
        assert f == s, f"{d / n} reads differently"
    assert sum(1 for _, _, secs, _ in fast if secs) > 300  # the cases are not all empty
    assert sum(1 for types, _, _, _ in fast if types["endpoint"]) > 50
    assert any(p for _, _, _, p in fast)


def test_plus_adds_to_the_first_section_of_the_name_as_asterisk_does(tmp_path):
    """[alexa](+) after the endpoint, aor and identify of that name changes the endpoint
    (seen on Asterisk 22.10.1: `pjsip show endpoint alexa` then shows the added
    identify_by); (+type=identify) picks the first section whose settings match."""
    cfg = read(tmp_path, {"pjsip.conf": "[alexa]\ntype=endpoint\ncontext=from-alexa\n\n"
                          "[alexa]\ntype=aor\n\n[alexa]\ntype=identify\nendpoint=alexa\n"
                          "match=3.239.178.128/25\n\n[alexa](+)\nidentify_by=username,ip\n\n"
                          "[alexa](+type=identify)\nmatch=0.0.0.0/0\n"})
    endpoint, aor, ident = cfg.named("alexa")
    assert endpoint.value("identify_by") == "username,ip" and aor.value("identify_by") is None
    assert [s.value for s in ident.get_all("match")] == ["3.239.178.128/25", "0.0.0.0/0"]
    assert not cfg.problems

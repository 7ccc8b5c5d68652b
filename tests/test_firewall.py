"""Rulesets judged as the kernel would, from output of the real tools."""

from __future__ import annotations

import ipaddress

import pytest

from helpers import DATA, can_make_rulesets, iptables_ruleset, nft_ruleset
from pbx_bridge.firewall.detect import detect_format, parse_ruleset
from pbx_bridge.firewall.model import coverage
from pbx_bridge.firewall.values import RulesetSyntaxError

FW = DATA / "firewall"
AMAZON = ipaddress.IPv4Network("3.239.178.128/25")
NO_NETNS = can_make_rulesets()
needs_netns = pytest.mark.skipif(NO_NETNS is not None, reason=f"real rulesets: {NO_NETNS}")


def load(name: str):
    return parse_ruleset((FW / name).read_text(), name)


def gaps(rs, proto, ports, cidr=AMAZON, assume="worst"):
    return [g.describe() for g in coverage(rs, proto, cidr, ports, None, assume).gaps]


@pytest.mark.parametrize("name,fmt", [
    ("amazon-open.rules", "iptables-save"), ("amazon-open.nft", "nft"),
    ("amazon-open.json", "nft-json"), ("ufw-open.txt", "ufw"),
    ("firewalld-open.txt", "firewalld"),
])
def test_open_rulesets_accept_amazon_in_every_format(name, fmt):
    assert detect_format((FW / name).read_text()) == fmt
    rs = load(name)
    assert gaps(rs, "tcp", (5061, 5061)) == []
    assert gaps(rs, "udp", (10000, 20000)) == []
    # ...and they do not accept what they do not list
    assert gaps(rs, "tcp", (5062, 5062)) != []


def test_freepbx_chains_marks_and_trusted_zone():
    rs = load("freepbx.rules")
    assert gaps(rs, "tcp", (5061, 5061)) == []  # via fpbxnets -> zone-trusted mark -> ACCEPT
    assert gaps(rs, "udp", (10000, 20000)) == []  # fpbxrtp
    # A network that is not trusted reaches fpbxreject for SIP/TLS.
    other = ipaddress.IPv4Network("18.0.0.0/25")
    refused = gaps(rs, "tcp", (5061, 5061), other)
    assert len(refused) == 1 and "-A fpbxreject -j REJECT" in refused[0]
    # The blacklisted network is dropped before anything else.
    bad = gaps(rs, "udp", (10000, 10000), ipaddress.IPv4Network("45.95.147.0/24"))
    assert bad and "fpbxblacklist" in bad[0]


def test_drop_before_accept_and_partial_port_range_name_the_gaps():
    rs = load("blocked-first.rules")
    tcp = gaps(rs, "tcp", (5061, 5061))
    assert tcp == ["5061 from 3.239.178.192/26: refused by rule at blocked-first.rules:6 "
                   "(-A INPUT -s 3.239.178.192/26 -j DROP)"]
    udp = gaps(rs, "udp", (10000, 20000))
    assert any(g.startswith("15001-20000 from 3.239.178.128/26: refused by policy of chain "
                            "INPUT") for g in udp)
    assert any(g.startswith("10000-20000 from 3.239.178.192/26") for g in udp)


def test_covering_cidr_counts():
    text = (FW / "amazon-open.rules").read_text().replace("3.239.178.128/25", "3.0.0.0/8")
    rs = parse_ruleset(text, "wide.rules")
    assert gaps(rs, "tcp", (5061, 5061)) == []


@pytest.mark.parametrize("name", ["partial.nft", "partial.json"])
def test_nft_partial_range_text_and_json_agree(name):
    rs = load(name)
    assert gaps(rs, "tcp", (5061, 5061)) == []
    udp = gaps(rs, "udp", (10000, 20000))
    assert len(udp) == 1 and udp[0].startswith("15001-20000 from 3.239.178.128/25: refused by "
                                               "rule at partial.")


def test_ufw_deny_first_and_firewalld_closed():
    rs = load("ufw-deny-first.txt")
    assert gaps(rs, "tcp", (5061, 5061)) == [
        "5061 from 3.239.178.128/26: refused by rule at ufw-deny-first.txt:8 (Anywhere"
        "                   DENY IN     3.239.178.128/26)"]
    fw = load("firewalld-closed.txt")
    assert gaps(fw, "tcp", (5061, 5061)) == [
        "5061 from 3.239.178.128/25: refused by policy of chain zone"]
    assert gaps(fw, "udp", (10000, 20000)) == [
        "12001-20000 from 3.239.178.128/25: refused by policy of chain zone"]


def test_unjudgeable_rule_is_judged_both_ways():
    text = (FW / "amazon-open.rules").read_text().replace(
        "-A INPUT -i lo -j ACCEPT",
        "-A INPUT -i lo -j ACCEPT\n-A INPUT -m recent --rcheck --name BAD -j DROP")
    rs = parse_ruleset(text, "recent.rules")
    assert gaps(rs, "tcp", (5061, 5061), assume="best") == []
    assert gaps(rs, "tcp", (5061, 5061), assume="worst") != []


def test_inactive_ufw_filters_nothing():
    rs = parse_ruleset("Status: inactive\n", "ufw.txt")
    assert gaps(rs, "udp", (10000, 20000)) == []


@pytest.mark.parametrize("text,msg", [
    ("hello world\n", "not a ruleset pbx-bridge knows"),
    ("*filter\n:INPUT DROP [0:0]\n-A INPUT -s 999.1.1.1 -j ACCEPT\nCOMMIT\n", "not an address"),
    ("*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp --dport 99999 -j ACCEPT\nCOMMIT\n",
     "not a port"),
    ("*filter\n:INPUT DROP [0:0]\nINPUT -j ACCEPT\nCOMMIT\n", "expected '-A CHAIN"),
    ("table inet f {\n chain input {\n type filter hook input priority filter; policy drop;\n"
     " tcp dport\n }\n}\n", "without a value"),
    ('{"nftables": 3', "not 'nft -j list ruleset' output"),
    # found by mutating the recorded rulesets: each used to crash the parser
    ("table ip fw {\n\tchain input {\n\t\ttype filter hook input priority filter; policy\n",
     "cannot read this nft ruleset"),
    ('{"nftables": [{"rule": {"family": "ip", "chain": "input", "expr": []}}]}',
     "lacks or garbles a field"),
    ('{"nftables": [{"chain": {"family": "inet", "name": "input"}}]}',
     "lacks or garbles a field"),
])
def test_garbage_rulesets_raise_one_clear_error(text, msg):
    with pytest.raises(RulesetSyntaxError) as err:
        parse_ruleset(text, "bad.rules")
    assert msg in str(err.value)
    assert "\n" not in str(err.value)


@needs_netns
def test_real_iptables_ruleset_made_now_matches_the_recorded_one():
    script = (FW / "freepbx.iptables.sh").read_text().splitlines()
    cmds = [ln[len("iptables "):] for ln in script if ln.startswith("iptables ")]
    live = iptables_ruleset(cmds)
    rs = parse_ruleset(live, "live")
    assert gaps(rs, "tcp", (5061, 5061)) == []
    strip = [ln for ln in live.splitlines() if not ln.startswith("#")]
    assert strip == (FW / "freepbx.rules").read_text().splitlines()


@needs_netns
def test_real_nft_goto_and_return_semantics():
    ruleset = """
table inet t {
    chain sub {
        udp dport 10000-12000 return
        udp dport 10000-20000 accept
    }
    chain gsub {
        tcp dport 5061 drop
    }
    chain input {
        type filter hook input priority 0; policy drop;
        ip saddr 3.239.178.128/25 jump sub
        udp dport 10000-11000 accept
        ip saddr 3.239.178.128/25 goto gsub
        tcp dport 5061 accept
    }
}"""
    for json_form in (False, True):
        rs = parse_ruleset(nft_ruleset(ruleset, json_form), "t")
        # return from sub falls back to input: 10000-11000 accepted there, 11001-12000 not
        udp = gaps(rs, "udp", (10000, 20000))
        assert len(udp) == 1 and udp[0].startswith("11001-12000 from 3.239.178.128/25")
        # goto gsub drops 5061 before input's later accept
        assert gaps(rs, "tcp", (5061, 5061))[0].startswith("5061 from 3.239.178.128/25: "
                                                           "refused by rule")


def test_nat_only_iptables_filters_nothing():
    rs = parse_ruleset("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", "nat.rules")
    assert gaps(rs, "udp", (10000, 20000)) == []
    assert rs.notes == ("no filter table: iptables filters nothing",)


@pytest.mark.parametrize("text", [
    "3.239.178.128/25", "3.239.178.200/25", "45.1.2.3", "45.1.2.3/32", "0.0.0.0/0",
    "255.255.255.255", "10.0.0.0/8", "10.1.2.3/08", "192.168.1.0/255.255.255.0", '"1.2.3.4"',
    " 1.2.3.4/31 ", "2001:db8::/32", "::1", "01.2.3.4", "1.2.3.256", "1.2.3.4/33", "1.2.3",
    "1.2.3.4/", "1.2.3.4/x", "abc", "1.2.3.4/-1", "\u0661.2.3.4",
])
def test_addresses_read_as_ipaddress_reads_them(text):
    """Rule addresses are read directly when dotted-quad (thousands of fail2ban bans), and
    give exactly the block, or the error, that ipaddress gives."""
    from pbx_bridge.firewall.values import parse_net
    try:
        net = ipaddress.ip_network(text.strip().strip('"'), strict=False)
        want = (int(net.network_address), int(net.broadcast_address)) \
            if net.version == 4 else None
    except ValueError:
        with pytest.raises(RulesetSyntaxError, match="not an address or network"):
            parse_net(text, "r:1")
        return
    assert parse_net(text, "r:1") == want


def test_a_backwards_address_range_is_a_syntax_error():
    from pbx_bridge.firewall.values import parse_ip_range
    assert parse_ip_range("10.0.0.1", "10.0.0.9", "r:1") == ((0x0A000001, 0x0A000009),)
    with pytest.raises(RulesetSyntaxError, match="r:1: not an address range"):
        parse_ip_range("10.0.0.9", "10.0.0.1", "r:1")

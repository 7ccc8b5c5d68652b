"""The Amazon trunk's Asterisk configuration as text: pure functions of a :class:`TrunkConfig`.

Every value that reaches a config file is checked first: a newline, ``;``, ``[`` or ``]`` in a
name, path or address would change the file's meaning, so it is refused, never written.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ..errors import UsageError
from ..firewall.commands import port_span

AMAZON_SIP_PLACEHOLDER = "FILL-IN-AMAZON-SIP-ADDRESS"
_FORBIDDEN = re.compile(r"[\n\r;\[\]]")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


def checked(value: str, what: str) -> str:
    if _FORBIDDEN.search(value):
        raise UsageError(f"{what} {value!r} contains a newline, ';', '[' or ']', which would "
                         "change the meaning of the config file; refused")
    if not value.strip():
        raise UsageError(f"{what} is empty")
    return value


def checked_name(value: str, what: str) -> str:
    checked(value, what)
    if not _NAME.match(value):
        raise UsageError(f"{what} {value!r}: use letters, digits, '.', '_' and '-'")
    return value


@dataclass(frozen=True)
class TrunkConfig:
    freepbx: bool
    transport: str
    endpoint: str
    port: int
    cert_file: str
    priv_key_file: str
    ca_list_file: str
    public_ip: str | None
    local_nets: tuple[str, ...]
    rtp_start: int
    rtp_end: int
    context: str
    amazon_cidrs: tuple[str, ...]
    room_pattern: str
    amazon_sip: str | None  # Amazon's outbound SIP address, when the trunk tells it
    bind: str = "0.0.0.0"
    agi: str | None = None  # e.g. agi://127.0.0.1:4573 to look rooms up at call time
    phones_context: str | None = None  # plain Asterisk: where the PBX's phones are dialled
    # process AGI: where the routes are (the settings' state dir), passed in the AGI() call:
    # Asterisk runs it as the asterisk user, who may not read the settings file
    state_dir: str | None = None

    def __post_init__(self) -> None:
        for name in ("transport", "endpoint", "context"):
            checked_name(getattr(self, name), f"--{name.replace('_', '-')}")
        if self.context == "pbx-bridge-to-alexa" or self.context == self.phones_context:
            raise UsageError(f"--context {self.context}: that context is "
                             + ("pbx-bridge's route from the phones to the rooms"
                                if self.context == "pbx-bridge-to-alexa" else "the phones'")
                             + "; calls from Alexa need a context of their own "
                             "(default from-alexa)")
        if self.phones_context is not None:
            checked_name(self.phones_context, "--phones-context")
        try:
            ipaddress.ip_address(checked(self.bind, "--bind"))
        except ValueError:
            raise UsageError(f"--bind {self.bind}: not an IP address") from None
        for name in ("cert_file", "priv_key_file", "ca_list_file"):
            checked(getattr(self, name), name)
        if not 0 < self.port < 65536:
            raise UsageError(f"--port {self.port}: not a port")
        if not 1024 <= self.rtp_start < self.rtp_end <= 65535:
            raise UsageError(f"--rtp-range {self.rtp_start}-{self.rtp_end}: need "
                             "1024 <= start < end <= 65535")
        if self.public_ip is not None:
            checked(self.public_ip, "--public-ip")
            try:
                ipaddress.IPv4Address(self.public_ip)
            except ValueError:
                raise UsageError(f"--public-ip {self.public_ip}: not an IPv4 address") \
                    from None
        for net in self.local_nets + self.amazon_cidrs:
            checked(net, "network")
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise UsageError(f"{net!r} is not a network (e.g. 192.168.1.0/24)") from None
        checked(self.room_pattern, "--room-pattern")
        if self.agi is not None:
            checked(self.agi, "--agi")
            if not re.fullmatch(r"agi://[A-Za-z0-9.:\[\]-]+", self.agi) and self.agi != "process":
                raise UsageError(f"--agi {self.agi!r}: expected agi://HOST:PORT or 'process'")
        if not re.fullmatch(r"_?[0-9XZN.\[\]-]+", self.room_pattern.replace("[", "").replace(
                "]", "")):
            raise UsageError(f"--room-pattern {self.room_pattern!r}: expected a dialplan "
                             "pattern such as _7XXX")
        if self.amazon_sip is not None:
            checked(self.amazon_sip, "Amazon's SIP address")
        if self.state_dir is not None:
            checked(self.state_dir, "the state dir")
            if not self.state_dir.startswith("/") or re.search(r"[,()\"'\s\\$]",
                                                                 self.state_dir):
                raise UsageError(f"the state dir {self.state_dir!r} cannot be passed to the "
                                 "AGI: it must be an absolute path without commas, "
                                 "parentheses, quotes, '$', '\\' or spaces")


# Mozilla's "intermediate" TLS 1.2 suites: forward secrecy with AES-GCM or ChaCha20-Poly1305
# only (no CBC, no SHA-1 MAC, no RSA key exchange). The names are OpenSSL's, as Asterisk's
# `cipher` option takes them (comma-separated).
TLS_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
               "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
               "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305")


def transport(c: TrunkConfig) -> str:
    ip = c.public_ip or "FILL-IN-PUBLIC-IP"
    lines = [f"[{c.transport}]", "type=transport", "protocol=tls",
             f"bind={c.bind}:{c.port}", f"cert_file={c.cert_file}",
             f"priv_key_file={c.priv_key_file}", f"ca_list_file={c.ca_list_file}",
             "method=tlsv1_2", "; forward secrecy and AEAD only (Mozilla intermediate, TLS 1.2)",
             f"cipher={','.join(TLS_CIPHERS)}",
             "verify_server=yes", "verify_client=no", "require_client_cert=no",
             f"external_signaling_address={ip}", f"external_media_address={ip}"]
    lines += [f"local_net={n}" for n in c.local_nets]
    return "\n".join(lines)


def endpoint(c: TrunkConfig) -> str:
    return "\n".join([
        f"[{c.endpoint}]", "type=endpoint", f"transport={c.transport}", f"context={c.context}",
        f"aors={c.endpoint}",
        "; Amazon is known by its address alone (the identify below): a SIP From user of "
        f"'{c.endpoint}'",
        "; from anywhere else is an unknown caller, refused (Asterisk's default is "
        "username,ip)",
        "identify_by=ip",
        "disallow=all", "allow=ulaw,alaw",
        "; SDES-SRTP is required; the suite Amazon uses is AES_CM_128_HMAC_SHA1_80",
        "media_encryption=sdes", "media_encryption_optimistic=no", "srtp_tag_32=no",
        "dtmf_mode=rfc4733", "rtp_symmetric=yes", "force_rport=yes", "rewrite_contact=yes",
        "direct_media=no", "trust_id_inbound=yes", "send_pai=yes"])


def aor(c: TrunkConfig) -> str:
    lines = [f"[{c.endpoint}]", "type=aor", "qualify_frequency=60"]
    if c.amazon_sip:
        lines.append(f"contact=sip:{c.amazon_sip}\\;transport=tls")
    else:
        lines += ["; Amazon's outbound SIP address is not known yet (the trunk does not say it).",
                  "; Fill it in, uncomment, and reload, for calls from PBX phones to rooms:",
                  f";contact=sip:{AMAZON_SIP_PLACEHOLDER}:5061\\;transport=tls"]
    return "\n".join(lines)


def identify(c: TrunkConfig) -> str:
    return "\n".join([f"[{c.endpoint}]", "type=identify", f"endpoint={c.endpoint}",
                      *(f"match={n}" for n in c.amazon_cidrs)])


def pjsip_all(c: TrunkConfig) -> str:
    return "\n\n".join([transport(c), endpoint(c), aor(c), identify(c)])


def rtp(c: TrunkConfig, header: str) -> str:
    return "\n".join([header, f"rtpstart={c.rtp_start}", f"rtpend={c.rtp_end}"])


# After a Dial to Amazon: its SIP answer ("SIP 404 Not Found"), which `pbx-bridge test-call`
# reads over AMI (and which shows in the CLI's verbose log).
SIP_OUTCOME = " same => n,Set(ALEXA_SIP=${HANGUPCAUSE(${HANGUPCAUSE_KEYS()},tech)})"

# FreePBX's contexts for a PBX's own destinations (core's from-did-direct includes the first
# two): extensions with their follow-me, ring groups, queues. Never from-internal, which also
# includes outbound-allroutes: from there a guest's Echo could dial the PSTN.
FREEPBX_REACH = ("ext-findmefollow", "ext-local", "ext-group", "ext-queues")


# The first steps of every call from the trunk. Amazon calls only over TLS, so a PJSIP call
# that arrived otherwise (UDP from the identify's range, its SRTP keys in clear SDP) is refused
# with cause 21 (SIP 403). Its media is SRTP by the endpoint: media_encryption=sdes with
# media_encryption_optimistic=no answers an offer without SDES keys 488 before any dialplan
# (CHANNEL(rtp,secure) cannot be read here: the call's media starts later, at Progress or
# Answer). Local channels (the admin's own test calls over AMI) are not the trunk and pass.
GUARD_REFUSED = "refused a call on the Alexa trunk: its signalling is not TLS"


def guard(first: str) -> list[str]:
    return [f"exten => _X.,1,{first}",
            ' same => n,GotoIf($["${CHANNEL(channeltype)}" != "PJSIP"]?secure)',
            ' same => n,GotoIf($["${CHANNEL(pjsip,secure)}" = "1"]?secure)',
            f" same => n,Log(WARNING,pbx-bridge: {GUARD_REFUSED} (from "
            "${CHANNEL(pjsip,remote_addr)}))",
            " same => n,Hangup(21)",
            " same => n(secure),NoOp(over TLS)"]


def reach_context(c: TrunkConfig) -> str:
    """FreePBX: the context of what Alexa rooms may call, behind the guard in c.context."""
    return f"{c.context}-reach"


def _caller_name(c: TrunkConfig) -> list[str]:
    """Show the room's name on the front desk's phone (with an AGI to look it up). TryExec:
    a name is a nicety, and an AGI that cannot start (a FastAGI server down) would else hang
    the guest's call up."""
    if not c.agi:
        return []
    return [f" same => n,TryExec(AGI(pbx-bridge,agi,{_state_arg(c)}alexa-caller))"
            if c.agi == "process" else f" same => n,TryExec(AGI({c.agi}/alexa-caller))"]


def _state_arg(c: TrunkConfig) -> str:
    return f"--state-dir={c.state_dir}," if c.state_dir else ""


_AGI_CALL = re.compile(r"AGI\(pbx-bridge,agi,(?:--state-dir=([^,)]*),)?alexa-route")


def agi_state_dirs(dialplan_text: str) -> set[str | None]:
    """The state dirs the process AGI calls of a generated dialplan name (None: a call that
    names none, and so reads the default or the settings it may not read)."""
    return {m.group(1) for m in _AGI_CALL.finditer(dialplan_text)}


def dialplan(c: TrunkConfig, context_exists: bool = False) -> str:
    lines: list[str] = []
    if context_exists:
        lines += [f"; Calls from Alexa rooms arrive in {c.context}, which the dialplan "
                  "already has: start each of its",
                  "; extensions with the TLS check of pbx-bridge's own (pbx-bridge "
                  "preflight shows it)."]
    elif c.freepbx:
        reach = reach_context(c)
        lines += ["; Calls from Alexa rooms, over TLS only: this PBX's extensions, "
                  "ring groups and",
                  "; queues, and nothing else (not from-internal: its outbound routes would "
                  "let a guest's Echo",
                  "; dial out).",
                  f"[{c.context}]",
                  *guard("NoOp(Alexa room ${CALLERID(num)} calls ${EXTEN})"),
                  *_caller_name(c),
                  # digits only: an extension, ring group or queue number, never a feature
                  # code (*21...) or a follow-me entry (FM...) of ext-findmefollow
                  ' same => n,GotoIf($[${REGEX("^[0-9]{1,15}$" ${EXTEN})}]?:refuse)',
                  f" same => n,GotoIf(${{DIALPLAN_EXISTS({reach},${{EXTEN}},1)}}?:refuse)",
                  f" same => n,Goto({reach},${{EXTEN}},1)",
                  " same => n(refuse),NoOp(${EXTEN} is not reachable from Alexa rooms)",
                  " same => n,Hangup(1)", "",
                  f"[{reach}]", *(f"include => {ctx}" for ctx in FREEPBX_REACH), ""]
    else:
        phones = c.phones_context or "default"
        lines += [f"; Calls from Alexa rooms, over TLS only, reach this PBX's phones "
                  f"in [{phones}]",
                  "; and nothing else: a PJSIP endpoint named like the dialled extension, "
                  "living in that context.",
                  f"[{c.context}]",
                  *guard("NoOp(Alexa room ${CALLERID(num)} calls ${EXTEN})"), *_caller_name(c)]
        lines += [' same => n,GotoIf($[${REGEX("^[0-9]{1,15}$" ${EXTEN})}]?:refuse)',
                  f' same => n,GotoIf($["${{PJSIP_ENDPOINT(${{EXTEN}},context)}}" = '
                  f'"{phones}"]?:refuse)',
                  f" same => n,GotoIf(${{DIALPLAN_EXISTS({phones},${{EXTEN}},1)}}?:refuse)",
                  f" same => n,Goto({phones},${{EXTEN}},1)",
                  " same => n(refuse),NoOp(${EXTEN} is not a phone of this PBX)",
                  " same => n,Hangup(1)", ""]
    lines += ["; PBX phones reach a room's Alexa through the Amazon trunk:",
              "[pbx-bridge-to-alexa]",
              f"exten => {c.room_pattern},1,NoOp(Calling Alexa room extension ${{EXTEN}})"]
    if c.agi:
        call = f"AGI(pbx-bridge,agi,{_state_arg(c)}alexa-route,${{EXTEN}})" \
            if c.agi == "process" else \
            f"AGI({c.agi}/alexa-route,${{EXTEN}})"
        lines += [f" same => n,{call}",
                  ' same => n,GotoIf($["${ALEXA_MAPPED}" != "1"]?notroom)',
                  " same => n,Dial(${ALEXA_DIAL},60)",
                  SIP_OUTCOME,
                  " same => n,Hangup()",
                  " same => n(notroom),Congestion()"]
    else:
        lines += [f" same => n,Dial(PJSIP/${{EXTEN}}@{c.endpoint},60)", SIP_OUTCOME,
                  " same => n,Hangup()"]
    if c.freepbx:
        lines += ["", "; PBX phones reach rooms: FreePBX's from-internal includes "
                  "from-internal-custom first, and a",
                  "; pattern of its own wins over a less specific one there (an include "
                  "would lose to every one)",
                  "[from-internal-custom]", room_route(c)]
    return "\n".join(lines)


def room_route(c: TrunkConfig) -> str:
    """The line that sends a phone's call to a room extension on to the trunk."""
    return f"exten => {c.room_pattern},1,Goto(pbx-bridge-to-alexa,${{EXTEN}},1)"


def firewall(c: TrunkConfig) -> str:
    """Rules for every firewall tool, printed for the user to apply (never applied here)."""
    media = (c.rtp_start, c.rtp_end)
    sig = (c.port, c.port)
    out = ["# iptables"]
    for cidr in c.amazon_cidrs:
        out.append(f"iptables -I INPUT -s {cidr} -p tcp -m tcp --dport {c.port} -j ACCEPT")
        out.append(f"iptables -I INPUT -s {cidr} -p udp -m udp --dport "
                   f"{port_span(media, ':')} -j ACCEPT")
    out.append("# nftables")
    for cidr in c.amazon_cidrs:
        out.append(f"nft insert rule inet filter input ip saddr {cidr} tcp dport {c.port} "
                   "accept")
        out.append(f"nft insert rule inet filter input ip saddr {cidr} udp dport "
                   f"{port_span(media, '-')} accept")
    out.append("# ufw")
    for cidr in c.amazon_cidrs:
        out.append(f"ufw allow proto tcp from {cidr} to any port {port_span(sig, ':')}")
        out.append(f"ufw allow proto udp from {cidr} to any port {port_span(media, ':')}")
    out.append("# firewalld")
    for cidr in c.amazon_cidrs:
        for proto, ports in (("tcp", sig), ("udp", media)):
            out.append(f"firewall-cmd --permanent --add-rich-rule='rule family=\"ipv4\" "
                       f"source address=\"{cidr}\" port port=\"{port_span(ports, '-')}\" "
                       f"protocol=\"{proto}\" accept'")
    out.append("firewall-cmd --reload")
    out.append("# FreePBX firewall module (Connectivity > Firewall), not 'fwconsole firewall "
               "trust', which opens every port:")
    out.append(f"#   Networks: add {', '.join(c.amazon_cidrs)} in zone 'Other'")
    out.append(f"#   Services > Custom Services: 'Alexa SIP TLS' TCP {port_span(sig, ':')} and "
               f"'Alexa SRTP' UDP {port_span(media, ':')}, each allowed for zone 'Other' only")
    return "\n".join(out)

"""Gather: the one I/O step of the preflight. It builds a frozen :class:`Snapshot` of the host;
every check is a pure function of it. A fact that cannot be gathered is an :class:`Unknown` with
its reason, never an exception.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Generic, TypeVar, Union

from .. import certs
from ..asterisk import pjsip
from ..asterisk.conf import Config, Section, Where, read_config
from ..defaults import DEFAULT_AMAZON_CIDR
from ..host import Clock, FileSystem, Runner
from ..errors import InputError, UsageError
from ..firewall.detect import combine, parse_ruleset, parser
from ..firewall.model import Ruleset
from ..firewall.values import RulesetSyntaxError
from ..net import LookupFailed, Network, TlsProbe, WeakProbe
from ..asterisk.pjsip import Transport

if TYPE_CHECKING:  # cryptography is imported when a certificate is read (certs.py)
    from cryptography import x509
    from ..certs import PrivateKey

T = TypeVar("T")


@dataclass(frozen=True)
class Unknown:
    reason: str


@dataclass(frozen=True)
class NoAddress:
    """DNS answered that a name has no address (NXDOMAIN, no A record): known, not unknown."""
    reason: str


@dataclass(frozen=True)
class Options:
    asterisk_dir: Path = Path("/etc/asterisk")
    endpoint: str | None = None
    public_ip: str | None = None
    fqdn: str | None = None
    amazon_cidrs: tuple[str, ...] = (DEFAULT_AMAZON_CIDR,)
    firewall_rules: Path | None = None
    dns_server: tuple[str, int] | None = None
    live: bool = False
    firewall: bool = True  # read the firewall (trunk create does not need it)
    dns: bool = True  # look the certificate's names up (only cert.dns needs it)
    key_group: str = "asterisk"  # the group Asterisk runs as: the key may be readable by it
    # how to ask the running Asterisk (``asterisk -rx``) what it uses (the RTP range), or None
    asterisk_cli: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Located(Generic[T]):
    """A value and where the configuration says it."""

    value: T
    where: Where | None
    source: str


@dataclass(frozen=True)
class CertFacts:
    path: str
    where: Where
    chain: Union[tuple[x509.Certificate, ...], Unknown]
    key_path: str | None
    key_where: Where | None
    key: Union[PrivateKey, Unknown]
    cert_read_error: str | None = None  # set when the file itself could not be read
    key_read_error: str | None = None
    key_mode: int | None = None  # the key file's permission bits, when it could be stat'ed
    key_gid: int | None = None

    def leaf(self) -> x509.Certificate | None:
        """The PBX's own certificate wherever it sits in the file (a reversed chain is
        cert.chain's finding alone): the one the key belongs to, else the first non-CA; None
        when the file holds no certificate that parses."""
        if isinstance(self.chain, Unknown) or not self.chain:
            return None
        return certs.leaf_of(self.chain, None if isinstance(self.key, Unknown) else self.key)


@dataclass(frozen=True)
class Snapshot:
    options: Options
    now: datetime
    freepbx: bool
    pjsip: Config
    rtp: Config
    modules: Config
    transport: Transport | None
    endpoint: Union[Located[Section], Unknown]
    cert: Union[CertFacts, Unknown]
    ca_list: Union[Located[tuple[x509.Certificate, ...]], Unknown]
    public_ip: Union[Located[str], Unknown]
    host_ips: Union[tuple[str, ...], Unknown] = Unknown("not gathered")
    # a name's A records, NoAddress when DNS said it has none, Unknown when no resolver
    # could be asked
    dns: dict[str, Union[tuple[str, ...], NoAddress, Unknown]] = field(default_factory=dict)
    firewall: Union[Ruleset, Unknown] = Unknown("not gathered")
    live: Union[TlsProbe, Unknown, None] = None
    weak_tls: Union[WeakProbe, None] = None  # --live: a handshake offering only weak suites
    dialplan: Union[Config, None] = None  # extensions.conf with its includes
    running_rtp: tuple[int, int] | None = None  # the RTP range the running Asterisk uses


def _is_freepbx(fs: FileSystem) -> bool:
    return fs.host_path("pjsip.transports.conf").exists() or \
        fs.host_path("freepbx_module_admin.conf").exists()


def _choose_transport(cfg: Config, endpoint: Section | None) -> Transport | None:
    tls = [t for t in pjsip.transports(cfg) if t.protocol == "tls"]
    if endpoint is not None:
        named = endpoint.value("transport")
        for t in tls:
            if t.name == named:
                return t
    return tls[0] if tls else None


def _choose_endpoint(cfg: Config, opts: Options) -> Union[Located[Section], Unknown]:
    if opts.endpoint:
        sec = pjsip.endpoint(cfg, opts.endpoint)
        if sec is None:
            names = [e.name for e in pjsip.objects(cfg, "endpoint")]
            raise UsageError(f"--endpoint {opts.endpoint}: no such PJSIP endpoint; the config "
                             f"has: {', '.join(names[:20]) or 'none'}" +
                             (f" and {len(names) - 20} more" if len(names) > 20 else ""))
        return Located(sec, sec.where, "--endpoint")
    try:
        found = pjsip.endpoint_for_cidrs(cfg, list(opts.amazon_cidrs))
    except ValueError:
        found = None
    if found is None:
        return Unknown("no PJSIP identify matches the Amazon CIDR "
                       f"{', '.join(opts.amazon_cidrs)}; pass --endpoint NAME")
    sec = pjsip.endpoint(cfg, found[0])
    if sec is None:
        return Unknown(f"identify at {found[1]} names endpoint {found[0]!r}, which is not "
                       "defined")
    return Located(sec, sec.where, f"identify at {found[1]}")


L = TypeVar("L")


def _load(fs: FileSystem, config_path: str, parse: Callable[[bytes], L]
          ) -> tuple[Union[L, Unknown], str | None]:
    """Read and parse a file the config names. Returns the value (or why not) and, apart, the
    error when the file itself could not be read."""
    path = str(fs.host_path(config_path))
    try:
        data = fs.read_bytes(fs.host_path(config_path))
    except IsADirectoryError:
        err = f"{path} is a directory"
        return Unknown(err), err
    except OSError as exc:
        err = f"cannot read {path}: {exc.strerror or exc}"
        return Unknown(err), err
    try:
        return parse(data), None
    except certs.CertError as exc:
        return Unknown(f"{path}: {exc}"), None


def _gather_cert(fs: FileSystem, t: Transport | None) -> Union[CertFacts, Unknown]:
    if t is None:
        return Unknown("no TLS transport")
    cert_s = t.get("cert_file")
    if cert_s is None or not cert_s.value:
        return Unknown(f"transport {t.name} has no cert_file")
    chain, cert_read_error = _load(fs, cert_s.value,
                                   lambda data: tuple(certs.load_chain(data)))
    key_s = t.get("priv_key_file")
    key: Union[PrivateKey, Unknown]
    key_path = key_read_error = None
    key_mode = key_gid = None
    if key_s is None or not key_s.value:
        key = Unknown(f"transport {t.name} has no priv_key_file")
    else:
        key_path = str(fs.host_path(key_s.value))
        password = t.value("priv_key_password")
        key, key_read_error = _load(fs, key_s.value,
                                    lambda data: certs.load_key(data, password))
        try:
            st = fs.stat(fs.host_path(key_s.value))
            key_mode, key_gid = st.st_mode & 0o7777, st.st_gid
        except OSError:
            pass
    return CertFacts(str(fs.host_path(cert_s.value)), cert_s.where, chain, key_path,
                     key_s.where if key_s else None, key, cert_read_error, key_read_error,
                     key_mode, key_gid)


def _gather_ca(fs: FileSystem, t: Transport | None
               ) -> Union[Located[tuple[x509.Certificate, ...]], Unknown]:
    if t is None:
        return Unknown("no TLS transport")
    s = t.get("ca_list_file")
    if s is None or not s.value:
        return Unknown(f"transport {t.name} sets no ca_list_file")
    bundle, _ = _load(fs, s.value, lambda data: tuple(certs.load_chain(data)))
    if isinstance(bundle, Unknown):
        return bundle
    return Located(bundle, s.where, str(fs.host_path(s.value)))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _gather_public_ip(opts: Options, t: Transport | None, net: Network,
                      host_ips: Union[tuple[str, ...], Unknown]) -> Union[Located[str], Unknown]:
    if opts.public_ip:
        return Located(opts.public_ip, None, "--public-ip")
    if t is not None:
        ext = t.get("external_signaling_address")
        if ext is not None and ext.value:
            if _is_ip(ext.value):
                return Located(ext.value, ext.where, "external_signaling_address")
            try:
                return Located(net.resolve_a(ext.value)[0], ext.where,
                               f"external_signaling_address {ext.value}")
            except LookupFailed as exc:
                return Unknown(f"external_signaling_address {ext.value}: {exc}")
        if _is_ip(t.host) and ipaddress.ip_address(t.host).is_global:
            bind = t.get("bind")
            return Located(t.host, bind.where if bind else t.where,
                           "the TLS transport's bind address")
    if isinstance(host_ips, Unknown):
        return Unknown(f"could not detect the public IP ({host_ips.reason}); pass --public-ip")
    if not host_ips:
        return Unknown("this host has no globally routable IPv4 address on its interfaces "
                       "(behind NAT?); pass --public-ip")
    return Located(host_ips[0], None, "this host's interface address")


def cert_dns_names(snap_cert: Union[CertFacts, Unknown], fqdn: str | None) -> list[str]:
    if fqdn:
        return [fqdn]
    leaf = None if isinstance(snap_cert, Unknown) else snap_cert.leaf()
    if leaf is None:
        return []
    cn, sans = certs.names(leaf)
    out: list[str] = []
    for n in ([cn] if cn else []) + list(sans):
        if n not in out:
            out.append(n)
    return out


def _gather_firewall(opts: Options, fs: FileSystem, runner: Runner) -> Union[Ruleset, Unknown]:
    if not opts.firewall:
        return Unknown("not asked for")
    if opts.firewall_rules is not None:
        path = opts.firewall_rules
        try:
            text = fs.read_bytes(path).decode("utf-8", "replace")
        except FileNotFoundError:
            raise InputError(str(path), "firewall rules file does not exist") from None
        except IsADirectoryError:
            raise InputError(str(path), "is a directory, not a rules file") from None
        except OSError as exc:
            raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from None
        return parse_ruleset(text, str(path))
    return live_ruleset(runner)


def live_ruleset(runner: Runner) -> Union[Ruleset, Unknown]:
    """The live ruleset: iptables (legacy or nft-backed, which is where FreePBX's firewall
    writes) plus native nftables tables. A packet must pass both."""
    try:
        return _live_ruleset(runner)
    except RulesetSyntaxError as exc:
        return Unknown(f"could not read the live firewall: {exc}")


def _live_ruleset(runner: Runner) -> Union[Ruleset, Unknown]:
    parts: list[Ruleset] = []
    reasons: list[str] = []
    read_any = False
    if runner.which("iptables-save"):
        res = runner.run(["iptables-save"])
        if res.returncode == 0:
            read_any = True
            if "*filter" in res.stdout:
                parts.append(parser("iptables-save")(res.stdout, "iptables-save"))
        else:
            reasons.append(f"iptables-save failed: {res.stderr.strip()[:120]}")
    if runner.which("nft"):
        res = runner.run(["nft", "-j", "list", "ruleset"])
        if res.returncode == 0:
            read_any = True
            rs = parser("nft-json")(res.stdout or '{"nftables": []}', "nft -j list ruleset")
            # Tables that iptables-nft manages were already read through iptables-save.
            own = {k: c for k, c in rs.chains.items()
                   if not (parts and k.split()[0] == "ip" and k.split()[1] in
                           ("filter", "nat", "mangle", "raw", "security"))}
            base = tuple(b for b in rs.base if b in own)
            if base:
                parts.append(Ruleset(rs.format, rs.source, own, base, rs.notes))
        else:
            reasons.append(f"nft list ruleset failed: {res.stderr.strip()[:120]}")
    if not parts and not read_any:
        for cmd in (["ufw", "status", "verbose"], ["firewall-cmd", "--list-all"]):
            if runner.which(cmd[0]):
                res = runner.run(cmd)
                if res.returncode == 0:
                    parts.append(parse_ruleset(res.stdout, " ".join(cmd)))
                    break
                reasons.append(f"{' '.join(cmd)} failed: {res.stderr.strip()[:120]}")
    if not parts:
        if read_any:
            return Ruleset("live", "live", {}, (), ("no firewall rules are loaded: nothing is "
                                                    "filtered",))
        why = "; ".join(reasons) or "none of iptables-save, nft, ufw, firewall-cmd is installed"
        return Unknown(f"could not read the live firewall ({why}); pass --firewall-rules FILE")
    return combine(parts, "live")


def gather(opts: Options, fs: FileSystem | None = None, runner: Runner | None = None,
           net: Network | None = None, clock: Clock | None = None) -> Snapshot:
    """Read everything the checks need. Raises :class:`InputError` only for input the user
    named that cannot be read (the config dir, a rules file)."""
    fs = fs or FileSystem(opts.asterisk_dir)
    runner = runner or Runner()
    net = net or Network(opts.dns_server, runner=runner)
    clock = clock or Clock()
    d = opts.asterisk_dir
    if not d.exists():
        raise InputError(str(d), "Asterisk config directory does not exist")
    if not d.is_dir():
        raise InputError(str(d), "is not a directory")
    firewall = _gather_firewall(opts, fs, runner)  # first: a bad rules file is a usage error
    pj = read_config(fs, "pjsip.conf")
    rtp = read_config(fs, "rtp.conf")
    modules = read_config(fs, "modules.conf")
    endpoint = _choose_endpoint(pj, opts)
    transport = _choose_transport(pj, endpoint.value if isinstance(endpoint, Located) else None)
    cert = _gather_cert(fs, transport)
    host_ips: Union[tuple[str, ...], Unknown]
    try:
        host_ips = tuple(net.global_ipv4_addresses())
    except LookupFailed as exc:
        host_ips = Unknown(str(exc))
    public_ip = _gather_public_ip(opts, transport, net, host_ips)
    dns: dict[str, Union[tuple[str, ...], NoAddress, Unknown]] = {}
    if opts.dns and not isinstance(public_ip, Unknown):
        timed_out = False
        for name in cert_dns_names(cert, opts.fqdn):
            if name.startswith("*."):
                dns[name] = Unknown("a wildcard name cannot be looked up; pass --fqdn")
            elif timed_out:  # one dead resolver should not cost a timeout per name
                dns[name] = Unknown(f"DNS look-up of {name} not tried: an earlier one timed out")
            else:
                try:
                    dns[name] = tuple(net.resolve_a(name))
                except LookupFailed as exc:
                    dns[name] = NoAddress(str(exc)) if exc.answered else Unknown(str(exc))
                    timed_out = "timed out" in str(exc)
    live: Union[TlsProbe, Unknown, None] = None
    weak = None
    if opts.live:
        if transport is None:
            live = Unknown("no TLS transport to connect to")
        else:
            live = net.tls_sip_probe(transport.connect_host, transport.port)
            if live.connected:
                weak = net.weak_cipher_probe(transport.connect_host, transport.port)
    running_rtp = None
    if opts.asterisk_cli and runner.which(opts.asterisk_cli[0]):
        import re
        try:
            res = runner.run([*opts.asterisk_cli, "-rx", "rtp show settings"], timeout=5.0)
            got = dict(re.findall(r"Port (start|end):\s+(\d+)", res.stdout))
            if res.returncode == 0 and len(got) == 2:
                running_rtp = (int(got["start"]), int(got["end"]))
        except (OSError, ValueError, subprocess.SubprocessError):
            pass  # not running, or not ours to ask: the config's range is judged
    # the dialplan: its problems count (a missing #include drops the whole file), and the
    # trunk's context is judged when another transport could bring calls to it
    dialplan = read_config(fs, "extensions.conf")
    return Snapshot(
        options=opts, now=certs.utc(clock.now()), freepbx=_is_freepbx(fs), pjsip=pj, rtp=rtp,
        modules=modules, transport=transport, endpoint=endpoint, cert=cert,
        ca_list=_gather_ca(fs, transport), public_ip=public_ip, host_ips=host_ips, dns=dns,
        firewall=firewall, live=live, weak_tls=weak, dialplan=dialplan, running_rtp=running_rtp,
    )

"""Where the trunk config goes, and what each file would become: a plan is a value.

On FreePBX, only the hand-edit files FreePBX preserves are written (``pjsip.*_custom.conf``,
``rtp_custom.conf``, ``extensions_custom.conf``). On plain Asterisk, our own included files
plus one marked ``#include`` block in ``pjsip.conf``, ``rtp.conf`` and ``extensions.conf``.
Our lines sit in a marked block; every other byte of a file is kept.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..asterisk.conf import Config, Where, read_config
from ..host import FileSystem
from ..errors import PbxBridgeError
from ..asterisk.pjsip import TCP_PROTOCOLS, transports
from . import blocks, render
from .render import TrunkConfig

PJSIP_OURS = "pjsip_pbx-bridge.conf"
RTP_OURS = "rtp_pbx-bridge.conf"
EXT_OURS = "extensions_pbx-bridge.conf"


class Conflict(PbxBridgeError):
    """The existing config already has something ours would clash with: we stop, unwritten."""


def text_lines(b: bytes | None) -> list[str]:
    """A file's bytes as lines for a diff (UTF-8, else Latin-1, which never fails; None: no
    such file)."""
    if b is None:
        return []
    try:
        text = b.decode("utf-8")
    except UnicodeDecodeError:
        text = b.decode("latin-1")
    return text.splitlines(keepends=True)


@dataclass(frozen=True)
class FileChange:
    path: Path
    old: bytes | None  # None: the file does not exist yet
    new: bytes
    private: bool = False  # a private key: written 0640 to the key group, or 0600

    def diff(self) -> str:
        name = str(self.path)
        if self.private:  # a key's bytes are never shown
            return f"# {name}: private key " + ("mode and group tightened\n"
                                                 if self.old == self.new else "replaced\n")
        return "".join(difflib.unified_diff(text_lines(self.old), text_lines(self.new),
                                            "/dev/null" if self.old is None else name, name))


@dataclass(frozen=True)
class Plan:
    config: TrunkConfig
    changes: tuple[FileChange, ...]  # only files whose bytes change
    notes: tuple[str, ...]
    firewall: str


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise Conflict(f"{path} is a directory where a config file should be") from None
    except OSError as exc:
        raise Conflict(f"{path}: cannot read: {exc.strerror or exc}") from None


def ours_blocks(config: Config) -> dict[str, tuple[int, int]]:
    """Line ranges of our marked blocks, by file."""
    spans = {}
    for src in config.sources:
        span = blocks.find(src.raw, src.path)
        if span is not None:
            spans[src.path] = (span.first_line, span.last_line)
    return spans


def inside_blocks(ours: dict[str, tuple[int, int]], where: Where) -> bool:
    span = ours.get(where.file)
    return span is not None and span[0] <= where.line <= span[1]


def _check_conflicts(pj: Config, c: TrunkConfig) -> None:
    if pj.errors:
        first = pj.errors[0]
        raise Conflict(f"pjsip.conf does not load as it is ({first}); fix that first "
                       "(pbx-bridge preflight lists every problem)")
    ours = ours_blocks(pj)
    for t in transports(pj):
        if inside_blocks(ours, t.where):
            continue
        if t.protocol in TCP_PROTOCOLS and t.port == c.port and \
                (t.host in ("0.0.0.0", "::", "") or c.bind in ("0.0.0.0", "::") or
                 t.host == c.bind):
            raise Conflict(f"transport {t.name} at {t.where} already binds TCP port {c.port}; "
                           f"choose another --port, or remove that transport yourself")
    for sec in pj.sections:
        if sec.is_template or inside_blocks(ours, sec.where):
            continue
        kind = (sec.value("type") or "").lower()
        if (sec.name == c.transport and kind == "transport") or \
                (sec.name == c.endpoint and kind in ("endpoint", "aor", "identify")):
            raise Conflict(f"[{sec.name}] (type={kind}) at {sec.where} already exists; pass "
                           f"--{'transport-name' if kind == 'transport' else 'endpoint'} "
                           "with another name")


def _rtp_header(rtp: Config) -> str:
    # Asterisk reads rtpstart/rtpend from the first [general]: append to it when the user's
    # config has one (ours, from an earlier run, does not count).
    ours = ours_blocks(rtp)
    theirs = [s for s in rtp.named("general") if not inside_blocks(ours, s.where)]
    return "[general](+)" if theirs else "[general]"


def phone_contexts(pj: Config, c: TrunkConfig) -> list[tuple[str, int]]:
    """The contexts of the PBX's phones, most used first: every endpoint's ``context`` but
    ours and the trunks' (endpoints an ``identify`` matches by address)."""
    ours = ours_blocks(pj)
    trunks = {sec.value("endpoint") for sec in pj.of_type("identify")}
    counts: dict[str, int] = {}
    for sec in pj.of_type("endpoint"):
        if sec.name == c.endpoint or sec.name in trunks or inside_blocks(ours, sec.where):
            continue
        ctx = (sec.value("context") or "default").strip()
        counts[ctx] = counts.get(ctx, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _phones_context(pj: Config, ext: Config, c: TrunkConfig) -> str:
    ours = ours_blocks(ext)
    contexts = {sec.name for sec in ext.sections if not inside_blocks(ours, sec.where)}
    if c.phones_context is not None:
        if c.phones_context not in contexts:
            raise Conflict(f"--phones-context {c.phones_context}: the dialplan has no such "
                           f"context (it has: {', '.join(sorted(contexts)[:12]) or 'none'})")
        return c.phones_context
    found = phone_contexts(pj, c)
    for ctx, _ in found:
        if ctx in contexts:
            return ctx
    raise Conflict("cannot tell which dialplan context the phones use (" + (
        ", ".join(f"{ctx}: {n} endpoint(s), not in the dialplan" for ctx, n in found)
        or "no phone endpoints in pjsip.conf") + "); pass --phones-context NAME")


def _exposed_key(path: Path, asterisk_dir: Path) -> tuple[Path, int, bytes] | None:
    """The private key, when other users may read it and it lies inside the Asterisk dir
    (pbx-bridge writes nowhere else): (path, mode, bytes)."""
    try:
        mode = path.stat().st_mode & 0o777
        if not mode & 0o007 or not path.resolve().is_relative_to(asterisk_dir.resolve()):
            return None
        return path, mode, path.read_bytes()
    except OSError:
        return None


FREEPBX_OUTBOUND = ("from-internal", "from-internal-xfer", "from-internal-noxfer",
                    "from-internal-additional", "outbound-allroutes")


# Contexts FreePBX generates (extensions_additional.conf and its modules): ours would be merged
# into theirs (Asterisk merges same-named contexts), with the extension includes added.
FREEPBX_PREFIXES = ("ext-", "from-", "app-", "macro-", "sub-", "outrt-", "outbound-", "ivr-",
                    "timeconditions", "cidlookup", "vm-", "park", "tc-", "ringgroups",
                    "followme-", "dialplan-", "func-", "bad-number", "default")


def _freepbx_context_free(fs: FileSystem, ext: Config, c: TrunkConfig) -> None:
    """--context on FreePBX must be a context of ours: not one FreePBX generates (by name,
    or because the dialplan has it outside our block)."""
    from .render import reach_context
    own_name = c.context.lower().startswith("from-alexa")  # pbx-bridge's own names
    if not own_name and c.context.lower().startswith(FREEPBX_PREFIXES):
        raise Conflict(f"--context {c.context}: FreePBX generates contexts named so; ours "
                       "would be merged into one of FreePBX's. Use from-alexa (the default) "
                       "or a name of your own such as pbx-bridge-rooms")
    if not ext.found:
        ext = read_config(fs, "extensions_additional.conf")
    ours = ours_blocks(ext)
    for sec in ext.sections:
        if sec.name in (c.context, reach_context(c)) and not inside_blocks(ours, sec.where):
            raise Conflict(f"--context {c.context}: the dialplan already has [{sec.name}] at "
                           f"{sec.where}; ours would be merged into it. Give --context a name "
                           "the dialplan does not use")


def _phones_reach_rooms(fs: FileSystem, ext: Config, context: str, c: TrunkConfig,
                        refuse: bool) -> str | None:
    """Whether a phone's call to a room extension, in ``context``, would reach the trunk:
    not when an extension of the context's own (outside our block) is exact for a room
    number or a more specific pattern. Conflict (``refuse``) or the sentence saying so."""
    from .patterns import shadows
    if not ext.found:
        ext = read_config(fs, "extensions_custom.conf")
    ours = ours_blocks(ext)
    for sec in ext.named(context):
        for s in sec.settings:
            if s.key.lower() != "exten" or inside_blocks(ours, s.where):
                continue
            name = s.value.split(",", 1)[0].strip()
            if shadows(name, c.room_pattern):
                why = (f"[{context}] at {s.where} has 'exten => {name}', which takes calls to "
                       f"room extensions ({c.room_pattern}) before pbx-bridge's route: phones "
                       "would never reach those rooms; change or remove that line")
                if refuse:
                    raise Conflict(why)
                return "warning: " + why
    return None


def _include_block(name: str) -> str:
    return f"#include {name}"


def build(asterisk_dir: Path, c: TrunkConfig,
          read: tuple[Config, Config, Config, Config] | None = None) -> Plan:
    """The plan for ``c``. ``read`` is pjsip.conf, rtp.conf, modules.conf and
    extensions.conf when the caller has read them already (the preflight snapshot has)."""
    fs = FileSystem(asterisk_dir)
    pj, rtp, modules, ext = read or (read_config(fs, "pjsip.conf"), read_config(fs, "rtp.conf"),
                                     read_config(fs, "modules.conf"),
                                     read_config(fs, "extensions.conf"))
    if not pj.found:
        raise Conflict(f"no pjsip.conf in {asterisk_dir}; is this an Asterisk config dir?")
    _check_conflicts(pj, c)
    notes: list[str] = []
    wanted: list[tuple[Path, str]] = []
    d = asterisk_dir
    if c.freepbx:
        sources = {os.path.basename(s.path) for s in pj.sources}
        targets = [("pjsip.transports_custom.conf", render.transport(c)),
                   ("pjsip.endpoint_custom.conf", render.endpoint(c)),
                   ("pjsip.aor_custom.conf", render.aor(c)),
                   ("pjsip.identify_custom.conf", render.identify(c))]
        for name, _ in targets:
            if name not in sources:
                raise Conflict(f"{name} is not included by this FreePBX pjsip.conf; "
                               "run 'fwconsole reload' to regenerate FreePBX's files first")
        wanted += [(d / name, body) for name, body in targets]
        if not rtp.found:
            raise Conflict(f"no rtp.conf in {asterisk_dir}; run 'fwconsole reload' first")
        wanted.append((d / "rtp_custom.conf", render.rtp(c, _rtp_header(rtp))))
        if c.context in FREEPBX_OUTBOUND or c.context.startswith("outrt-"):
            raise Conflict(f"--context {c.context} carries FreePBX's outbound routes: a guest's "
                           "Echo could dial the PSTN; use the generated from-alexa")
        _freepbx_context_free(fs, ext, c)
        _phones_reach_rooms(fs, ext, "from-internal-custom", c, refuse=True)
        wanted.append((d / "extensions_custom.conf", render.dialplan(c)))
    else:
        ext_ours = ours_blocks(ext)
        context_exists = any(sec.name == c.context and not inside_blocks(ext_ours, sec.where)
                             for sec in ext.sections)
        if not context_exists:
            c = replace(c, phones_context=_phones_context(pj, ext, c))
        if context_exists:
            notes.append(f"the dialplan already has [{c.context}]: calls from Alexa rooms go "
                         "there (not generated); add the TLS check at its top (pbx-bridge "
                         "preflight: security.transport shows the lines)")
        wanted += [(d / PJSIP_OURS, render.pjsip_all(c)),
                   (d / "pjsip.conf", _include_block(PJSIP_OURS)),
                   (d / RTP_OURS, render.rtp(c, _rtp_header(rtp))),
                   (d / "rtp.conf", _include_block(RTP_OURS)),
                   (d / EXT_OURS, render.dialplan(c, context_exists)),
                   (d / "extensions.conf", _include_block(EXT_OURS))]
    changes = []
    for path, body in wanted:
        old = _read(path)
        try:
            new = blocks.put(old or b"", body, str(path))
        except blocks.BlockError as exc:
            raise Conflict(f"{exc}; fix the markers by hand") from None
        if new != old:
            changes.append(FileChange(path, old, new))
    if c.public_ip is None:
        notes.append("the public IP is not known: external_signaling_address and "
                     "external_media_address say FILL-IN-PUBLIC-IP; re-run with --public-ip")
    if c.amazon_sip is None:
        notes.append(f"Amazon's outbound SIP address is not known from the trunk: the aor's "
                     f"contact is commented out with {render.AMAZON_SIP_PLACEHOLDER} to fill "
                     "in (needed only for calls from PBX phones to rooms)")
    settings = [s for sec in modules.named("modules") for s in sec.settings]
    if any(s.key.lower() == "noload" and s.value.strip().lower().startswith("res_srtp")
           for s in settings):
        raise Conflict("modules.conf disables res_srtp (noload), which SRTP needs; remove "
                       "that line yourself (pbx-bridge never edits your lines)")
    if any(s.key.lower() == "autoload" and s.value.strip().lower() in ("no", "false", "0")
           for s in settings) and not any(
            s.value.strip().lower().startswith("res_srtp") for s in settings
            if s.key.lower() in ("load", "preload", "require")):
        if c.freepbx:
            notes.append("modules.conf has autoload=no and does not load res_srtp.so")
        else:
            path = d / "modules.conf"
            old = _read(path)
            changes.append(FileChange(path, old, blocks.put(
                old or b"", "[modules](+)\nload => res_srtp.so", str(path))))
    if not c.freepbx:
        phones = c.phones_context or "the context your phones use"
        notes.append(f"so that phones can dial rooms through the trunk, add to [{phones}]: "
                     f"{render.room_route(c)} (an 'include => pbx-bridge-to-alexa' would lose "
                     "to any pattern of that context's own that matches room numbers)")
        if c.phones_context:
            why = _phones_reach_rooms(fs, ext, c.phones_context, c, refuse=False)
            if why:
                notes.append(why)
    for label, named in (("certificate", c.cert_file), ("private key", c.priv_key_file),
                         ("CA list", c.ca_list_file)):
        if not fs.host_path(named).exists():
            notes.append(f"the {label} {named} does not exist yet; put it there before "
                         "reloading")
    key = _exposed_key(fs.host_path(c.priv_key_file), asterisk_dir)
    if key is not None:
        path, mode, data = key
        changes.append(FileChange(path, data, data, private=True))
        notes.append(f"the private key {path} is readable by other users (mode {mode:04o}): "
                     "--write makes it 0640 to the key group ([pbx] key_group, default "
                     "asterisk), or 0600 where the host has no such group")
    return Plan(c, tuple(changes), tuple(notes), render.firewall(c))

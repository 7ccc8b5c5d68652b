"""Writes the dialplan examples in asterisk/dialplan/ from the generator itself, so that the
examples and `pbx-bridge generate` never disagree (a test checks it). Run from the repo root."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

import sys  # noqa: E402

sys.path.insert(0, str(ROOT))

from pbx_bridge.generate.render import TrunkConfig, dialplan  # noqa: E402

HEAD = "; Written by tools/make_asterisk_examples.py from pbx-bridge's generator.\n"


def config(freepbx: bool, agi: str | None) -> TrunkConfig:
    return TrunkConfig(freepbx=freepbx, transport="transport-alexa-tls", endpoint="alexa",
                       port=5061, cert_file="/etc/asterisk/keys/pbx.crt",
                       priv_key_file="/etc/asterisk/keys/pbx.key",
                       ca_list_file="/etc/asterisk/keys/ca.crt", public_ip=None, local_nets=(),
                       rtp_start=10000, rtp_end=20000,
                       context="from-alexa", phones_context=None if freepbx else "internal",
                       amazon_cidrs=("3.239.178.128/25",), room_pattern="_7XXX",
                       amazon_sip=None, agi=agi)


EXAMPLES = {
    "extensions_pbx-bridge.fastagi.conf": (
        "; Plain Asterisk, rooms looked up through `pbx-bridge fastagi` (include this file\n"
        "; from extensions.conf, and `include => pbx-bridge-to-alexa` in your phones' "
        "context;\n; `generate` writes your phones' context where this says internal).\n",
        config(False, "agi://127.0.0.1:4573")),
    "extensions_pbx-bridge.process-agi.conf": (
        "; Plain Asterisk, rooms looked up by process AGI (pbx-bridge must be on Asterisk's\n"
        "; PATH, e.g. /var/lib/asterisk/agi-bin/pbx-bridge -> the installed script).\n",
        config(False, "process")),
    "extensions_custom.freepbx.conf": (
        "; FreePBX: append to /etc/asterisk/extensions_custom.conf (from-internal includes\n"
        "; from-internal-custom), rooms looked up through `pbx-bridge fastagi`; the trunk\n"
        "; endpoint's context=from-alexa.\n",
        config(True, "agi://127.0.0.1:4573")),
}


def render_all() -> dict[str, str]:
    return {name: HEAD + intro + dialplan(c) + "\n" for name, (intro, c) in EXAMPLES.items()}


if __name__ == "__main__":
    for name, text in render_all().items():
        (ROOT / "asterisk" / "dialplan" / name).write_text(text)
        print(f"wrote asterisk/dialplan/{name}")

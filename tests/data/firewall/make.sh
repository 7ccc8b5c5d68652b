#!/bin/sh
# Rewrites the recorded rulesets in this folder with the real tools, each in a fresh network
# namespace. Needs root, iptables and nftables. Run: bash tests/data/firewall/make.sh
set -eu
cd "$(dirname "$0")"
for script in *.iptables.sh; do
    out="${script%.iptables.sh}.rules"
    unshare -n sh -ec ". ./$script; iptables-save" | sed '/^# \(Generated\|Completed\)/d' > "$out"
    echo "wrote $out"
done
for src in *.nft.in; do
    base="${src%.nft.in}"
    unshare -n sh -ec "nft -f $src; nft list ruleset" > "$base.nft"
    unshare -n sh -ec "nft -f $src; nft -j list ruleset" > "$base.json"
    echo "wrote $base.nft $base.json"
done

"""The door to the firewall: rulesets from ``iptables-save``, ``nft`` and the front-ends, read
into one model, and the commands that would open a port."""

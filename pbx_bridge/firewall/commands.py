"""The commands that open ports to Amazon, in each firewall tool's own words."""

from __future__ import annotations


def port_span(ports: tuple[int, int], sep: str) -> str:
    return str(ports[0]) if ports[0] == ports[1] else f"{ports[0]}{sep}{ports[1]}"


def open_commands(fmt: str, proto: str, ports: tuple[int, int], cidrs: tuple[str, ...]) -> str:
    """The command that opens the ports, in the tool that wrote the ruleset."""
    lines = []
    for cidr in cidrs:
        if fmt.startswith("nft"):
            lines.append(f"nft insert rule inet filter input ip saddr {cidr} {proto} dport "
                         f"{port_span(ports, '-')} accept")
        elif fmt == "ufw":
            lines.append(f"ufw insert 1 allow proto {proto} from {cidr} to any port "
                         f"{port_span(ports, ':')}")
        elif fmt == "firewalld":
            lines.append(f"firewall-cmd --permanent --add-rich-rule='rule family=\"ipv4\" "
                         f"source address=\"{cidr}\" port port=\"{port_span(ports, '-')}\" "
                         f"protocol=\"{proto}\" accept' && firewall-cmd --reload")
        else:
            lines.append(f"iptables -I INPUT -s {cidr} -p {proto} -m {proto} --dport "
                         f"{port_span(ports, ':')} -j ACCEPT")
    if fmt.startswith("iptables"):  # not 'Trusted' nor 'fwconsole firewall trust': every port
        lines.append(f"(FreePBX: in Connectivity > Firewall, add {', '.join(cidrs)} to "
                     f"Networks in zone 'Other', and a Custom Service for {proto.upper()} "
                     f"{port_span(ports, ':')} allowed for zone 'Other' only; 'Trusted' "
                     "would open every port of the PBX to it)")
    return "\n".join(lines)

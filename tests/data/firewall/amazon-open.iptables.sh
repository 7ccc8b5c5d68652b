# A plain host firewall that lets Amazon in to 5061/tcp and 10000-20000/udp.
iptables -P INPUT DROP
iptables -A INPUT -i lo -j ACCEPT
iptables -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
iptables -A INPUT -p tcp --dport 22 -j ACCEPT
iptables -A INPUT -s 3.239.178.128/25 -p tcp -m tcp --dport 5061 -j ACCEPT
iptables -A INPUT -s 3.239.178.128/25 -p udp -m udp --dport 10000:20000 -j ACCEPT

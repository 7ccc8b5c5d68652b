# A DROP for part of Amazon's block before the ACCEPT for all of it, and a media rule that
# covers only 10000-15000 of the RTP range.
iptables -P INPUT DROP
iptables -A INPUT -i lo -j ACCEPT
iptables -A INPUT -s 3.239.178.192/26 -j DROP
iptables -A INPUT -s 3.239.178.0/24 -p tcp -m tcp --dport 5061 -j ACCEPT
iptables -A INPUT -s 3.239.178.0/24 -p udp -m multiport --dports 5060,10000:15000 -j ACCEPT

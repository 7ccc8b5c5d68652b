# Shaped like FreePBX's firewall module: INPUT jumps to fpbxfirewall, which classifies packets
# with marks and user chains; Amazon's network is a "trusted" network (fpbxnets -> zone-trusted);
# an abuser host sits in the blacklist; anything unclassified ends in fpbxreject.
iptables -N fpbxfirewall
iptables -N fpbxblacklist
iptables -N fpbxnets
iptables -N fpbxinterfaces
iptables -N fpbxsmarthosts
iptables -N fpbxrtp
iptables -N fpbxreject
iptables -N zone-trusted
iptables -N zone-external
iptables -N fpbxsvc-ssh
iptables -P INPUT ACCEPT
iptables -A INPUT -j fpbxfirewall
iptables -A fpbxfirewall -i lo -j ACCEPT
iptables -A fpbxfirewall -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
iptables -A fpbxfirewall -p icmp -j ACCEPT
iptables -A fpbxfirewall -j fpbxblacklist
iptables -A fpbxfirewall -j fpbxsmarthosts
iptables -A fpbxfirewall -j fpbxrtp
iptables -A fpbxfirewall -j fpbxnets
iptables -A fpbxfirewall -j fpbxinterfaces
iptables -A fpbxfirewall -m mark --mark 0x1/0x1 -j ACCEPT
iptables -A fpbxfirewall -m recent --rcheck --seconds 86400 --hitcount 50 --name REPEAT --rsource -j fpbxreject
iptables -A fpbxfirewall -j fpbxreject
iptables -A fpbxblacklist -s 45.95.147.0/24 -j DROP
iptables -A fpbxsmarthosts -s 52.94.0.10/32 -p udp -m udp --dport 5060 -j MARK --set-xmark 0x1/0x1
iptables -A fpbxrtp -p udp -m udp --dport 10000:20000 -j ACCEPT
iptables -A fpbxnets -s 3.239.178.128/25 -j zone-trusted
iptables -A fpbxnets -s 192.168.30.0/24 -j zone-trusted
iptables -A zone-trusted -j MARK --set-xmark 0x1/0x1
iptables -A zone-trusted -j RETURN
iptables -A fpbxinterfaces -i eth0 -j zone-external
iptables -A zone-external -j fpbxsvc-ssh
iptables -A fpbxsvc-ssh -p tcp -m tcp --dport 22 -j ACCEPT
iptables -A fpbxreject -j REJECT --reject-with icmp-port-unreachable

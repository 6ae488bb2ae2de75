//! Next hops of a board's interfaces, from the kernel: each interface's own MAC
//! (`/sys/class/net`), the IPv4 default gateway of the Internet side (`/proc/net/route`)
//! and its MAC (`/proc/net/arp`, the kernel's neighbour table). When the gateway is not
//! in the table yet, a datagram to its discard port makes the kernel resolve it. No MAC
//! is configured anywhere. Towards the B4s the engine learns each subscriber's next hop
//! from its frames.

use std::net::{Ipv4Addr, UdpSocket};

use dataplane::config::EgressL2;

pub type Mac = [u8; 6];

pub fn parse_mac(s: &str) -> Option<Mac> {
    let v: Vec<u8> = s.trim().split(':').filter_map(|x| u8::from_str_radix(x, 16).ok()).collect();
    v.try_into().ok()
}

/// The MAC of interface `ifname`.
pub fn interface_mac(ifname: &str) -> Option<Mac> {
    parse_mac(&std::fs::read_to_string(format!("/sys/class/net/{ifname}/address")).ok()?)
}

/// The IPv4 default gateway through `ifname`, from `/proc/net/route` text.
pub fn default_gateway(route: &str, ifname: &str) -> Option<Ipv4Addr> {
    route.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 8 || f[0] != ifname || f[1] != "00000000" || f[7] != "00000000" {
            return None;
        }
        // Little-endian hex of the address.
        let g = u32::from_str_radix(f[2], 16).ok()?;
        Some(Ipv4Addr::from(g.swap_bytes()))
    })
}

/// The MAC of `ip` on `ifname`, from `/proc/net/arp` text (complete entries only).
pub fn arp_lookup(arp: &str, ip: Ipv4Addr, ifname: &str) -> Option<Mac> {
    arp.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 6 || f[0].parse::<Ipv4Addr>().ok()? != ip || f[5] != ifname {
            return None;
        }
        let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).ok()?;
        if flags & 0x2 == 0 {
            return None;
        }
        parse_mac(f[3]).filter(|m| *m != [0; 6])
    })
}

/// Keeps the layer-2 addressing of a board's two sides up to date.
pub struct NextHops {
    softwire_if: String,
    internet_if: String,
    poke: Option<UdpSocket>,
}

impl NextHops {
    pub fn new(softwire_if: &str, internet_if: &str) -> Self {
        NextHops {
            softwire_if: softwire_if.into(),
            internet_if: internet_if.into(),
            poke: UdpSocket::bind("0.0.0.0:0").ok(),
        }
    }

    /// Current addressing: (towards the B4s, towards the Internet). A MAC not known yet
    /// is zeros, and the engine drops (and counts) what would go there.
    pub fn resolve(&self) -> (EgressL2, EgressL2) {
        let sw = EgressL2 { src: interface_mac(&self.softwire_if).unwrap_or_default(), dst: [0; 6], vlan: None };
        let route = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
        let arp = std::fs::read_to_string("/proc/net/arp").unwrap_or_default();
        let gw_mac = default_gateway(&route, &self.internet_if).and_then(|gw| {
            let m = arp_lookup(&arp, gw, &self.internet_if);
            if m.is_none()
                && let Some(s) = &self.poke
            {
                // Makes the kernel resolve the gateway; the datagram itself is discarded.
                let _ = s.send_to(&[], (gw, 9));
            }
            m
        });
        let inet = EgressL2 {
            src: interface_mac(&self.internet_if).unwrap_or_default(),
            dst: gw_mac.unwrap_or_default(),
            vlan: None,
        };
        (sw, inet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernel_tables() {
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     in0\t0071000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     in0\t00000000\t507100CB\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(default_gateway(route, "in0"), Some(Ipv4Addr::new(203, 0, 113, 80)));
        assert_eq!(default_gateway(route, "other"), None);
        let arp = "IP address       HW type     Flags       HW address            Mask     Device\n\
                   203.0.113.80     0x1         0x2         aa:bb:cc:00:11:22     *        in0\n\
                   203.0.113.81     0x1         0x0         00:00:00:00:00:00     *        in0\n";
        assert_eq!(arp_lookup(arp, Ipv4Addr::new(203, 0, 113, 80), "in0"), Some([0xaa, 0xbb, 0xcc, 0, 0x11, 0x22]));
        assert_eq!(arp_lookup(arp, Ipv4Addr::new(203, 0, 113, 81), "in0"), None, "incomplete entry");
        assert_eq!(arp_lookup(arp, Ipv4Addr::new(203, 0, 113, 80), "in1"), None);
    }
}

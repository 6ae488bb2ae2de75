//! Next hops of a board's interfaces, from the kernel: each interface's own MAC, and
//! the forwarding table towards the Internet (the main table's IPv4 routes through the
//! Internet interface, their neighbours' MACs, the link's state), followed through
//! routing netlink (decision 0015). When a neighbour is not resolved yet, a datagram to
//! its discard port makes the kernel resolve it. No MAC is configured anywhere. Towards
//! the B4s the engine learns each subscriber's next hop from its frames.

use dataplane::config::EgressL2;
use dataplane::fib::FibHandle;
use dataplane::io::rtnl::Watcher;

pub type Mac = [u8; 6];

pub fn parse_mac(s: &str) -> Option<Mac> {
    let v: Vec<u8> = s.trim().split(':').filter_map(|x| u8::from_str_radix(x, 16).ok()).collect();
    v.try_into().ok()
}

/// The MAC of interface `ifname`.
pub fn interface_mac(ifname: &str) -> Option<Mac> {
    parse_mac(&std::fs::read_to_string(format!("/sys/class/net/{ifname}/address")).ok()?)
}

/// Keeps the layer-2 addressing of a board's two sides up to date: the interfaces' own
/// MACs, and the forwarding table towards the Internet, from the kernel's routing
/// netlink (`dataplane::io::rtnl`). Its thread stops when this is dropped.
pub struct NextHops {
    softwire_if: String,
    internet_if: String,
    watcher: Watcher,
}

impl NextHops {
    /// Dumps the kernel's tables (the first forwarding table is ready on return) and
    /// follows them.
    pub fn start(softwire_if: &str, internet_if: &str) -> std::io::Result<Self> {
        let watcher = Watcher::start(internet_if)?;
        Ok(NextHops { softwire_if: softwire_if.into(), internet_if: internet_if.into(), watcher })
    }

    /// The forwarding table the workers read.
    pub fn fib(&self) -> FibHandle {
        self.watcher.shared.fib.clone()
    }

    fn mac(&self, ifname: &str) -> Mac {
        self.watcher.shared.link(ifname).map(|l| l.mac).unwrap_or_default()
    }

    /// Current addressing: (towards the B4s, towards the Internet): the sources; the
    /// destinations come from the subscribers' frames and from the forwarding table.
    pub fn resolve(&self) -> (EgressL2, EgressL2) {
        let sw = EgressL2 { src: self.mac(&self.softwire_if), dst: [0; 6], vlan: None };
        let inet = EgressL2 { src: self.mac(&self.internet_if), dst: [0; 6], vlan: None };
        (sw, inet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_macs() {
        assert_eq!(parse_mac("aa:bb:cc:00:11:22\n"), Some([0xaa, 0xbb, 0xcc, 0, 0x11, 0x22]));
        assert_eq!(parse_mac("aa:bb"), None);
    }
}

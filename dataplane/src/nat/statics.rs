//! What the configuration maps for good (decision 0019): static port forwardings
//! (`nat server`) and B4s with an address, or an address and a port range, of their own
//! (`nat no-translation`, no-NAT and A+P, RFC 6346).
//!
//! Both are configuration: no session, no subscriber, no replication; every board builds
//! them from its own configuration. They are looked up only where the common path has
//! already missed (no session for the packet, an inner source outside the private
//! ranges, a destination outside the pools), so flows of dynamic NAT pay nothing.

use std::collections::HashMap;

use crate::config::InstanceConfig;
use crate::counters::Counter;

/// The inside end of a static forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inside {
    pub inst: u8,
    pub b4: [u8; 16],
    pub addr: u32,
    pub port: u16,
}

/// A B4's own address or port range, of instance `inst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owned {
    pub addr: u32,
    pub first: u16,
    pub last: u16,
    pub inst: u8,
    pub b4: [u8; 16],
}

/// The inside key of a static forwarding: (instance, B4, inside address, port, protocol).
type InsideKey = (u8, [u8; 16], u32, u16, u8);

#[derive(Debug, Default)]
pub struct Statics {
    /// (external address, port, protocol) -> inside end.
    outside: HashMap<(u32, u16, u8), Inside>,
    /// (instance, B4, inside address, port, protocol) -> (external address, port).
    inside: HashMap<InsideKey, (u32, u16)>,
    /// Own addresses and ranges, by address then first port (ranges never overlap).
    owned: Vec<Owned>,
}

impl Statics {
    pub fn new(instances: &[InstanceConfig]) -> Statics {
        let mut s = Statics::default();
        for (n, c) in instances.iter().enumerate() {
            let inst = n as u8;
            for m in &c.statics {
                let inside = Inside { inst, b4: m.b4, addr: m.inside_addr, port: m.inside_port };
                s.outside.insert((m.ext_addr, m.ext_port, m.proto), inside);
                s.inside.insert((inst, m.b4, m.inside_addr, m.inside_port, m.proto), (m.ext_addr, m.ext_port));
            }
            s.owned.extend(c.own_addresses.iter().map(|o| Owned {
                addr: o.addr,
                first: o.first,
                last: o.last,
                inst,
                b4: o.b4,
            }));
        }
        s.owned.sort_unstable_by_key(|o| (o.addr, o.first));
        s
    }

    /// Whether any static forwarding is configured.
    #[inline]
    pub fn has_forwardings(&self) -> bool {
        !self.outside.is_empty()
    }

    /// Whether any own address is configured.
    #[inline]
    pub fn has_owned(&self) -> bool {
        !self.owned.is_empty()
    }

    /// The inside end that external `addr:port` forwards to.
    #[inline]
    pub fn outside(&self, addr: u32, port: u16, proto: u8) -> Option<Inside> {
        if self.outside.is_empty() {
            return None;
        }
        self.outside.get(&(addr, port, proto)).copied()
    }

    /// The external address and port of inside end `addr:port` behind `b4`.
    #[inline]
    pub fn inside(&self, inst: u8, b4: &[u8; 16], addr: u32, port: u16, proto: u8) -> Option<(u32, u16)> {
        if self.inside.is_empty() {
            return None;
        }
        self.inside.get(&(inst, *b4, addr, port, proto)).copied()
    }

    /// The entries of own address `addr`.
    fn owned_at(&self, addr: u32) -> &[Owned] {
        let from = self.owned.partition_point(|o| o.addr < addr);
        let to = from + self.owned[from..].partition_point(|o| o.addr == addr);
        &self.owned[from..to]
    }

    /// Whether `addr` is someone's own address.
    #[inline]
    pub fn is_owned(&self, addr: u32) -> bool {
        !self.owned.is_empty() && !self.owned_at(addr).is_empty()
    }

    /// An outbound packet from `b4` with inner source `addr` and source port `port`
    /// (None: a packet without one, a later fragment). None: `addr` is nobody's own
    /// address; Some(Ok): it is this B4's, and the port in its range; Some(Err): the
    /// counted reason to drop it.
    #[inline]
    pub fn outbound(&self, inst: u8, b4: &[u8; 16], addr: u32, port: Option<u16>) -> Option<Result<(), Counter>> {
        if self.owned.is_empty() {
            return None;
        }
        let at = self.owned_at(addr);
        if at.is_empty() {
            return None;
        }
        let mut mine = at.iter().filter(|o| o.inst == inst && o.b4 == *b4).peekable();
        if mine.peek().is_none() {
            return Some(Err(Counter::DropOwnAddressSpoofed));
        }
        let Some(p) = port else { return Some(Ok(())) };
        Some(if mine.any(|o| (o.first..=o.last).contains(&p)) { Ok(()) } else { Err(Counter::DropOwnAddressPort) })
    }

    /// The B4 (and its instance) that holds `port` of own address `addr` (port None: a
    /// packet without one, which only a whole-address entry takes). None: `addr` is
    /// nobody's; Some(Err): no entry of that address holds the port.
    #[inline]
    pub fn inbound(&self, addr: u32, port: Option<u16>) -> Option<Result<&Owned, Counter>> {
        let at = self.owned_at(addr);
        if at.is_empty() {
            return None;
        }
        let hit = match port {
            Some(p) => at.iter().find(|o| (o.first..=o.last).contains(&p)),
            None => at.iter().find(|o| o.first <= 1 && o.last == u16::MAX),
        };
        Some(hit.ok_or(Counter::DropOwnAddressPort))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Ipv4Prefix, Ipv6Prefix, OwnAddress};

    #[test]
    fn own_addresses_both_ways() {
        let mut c = InstanceConfig::new(
            "i",
            [1; 16],
            Ipv6Prefix { addr: [0; 16], len: 0 },
            Ipv4Prefix { addr: 0x0a00_0000, len: 24 },
        );
        let (b1, b2) = ([2; 16], [3; 16]);
        c.own_addresses = vec![
            OwnAddress { b4: b1, addr: 7, first: 1, last: u16::MAX },
            OwnAddress { b4: b2, addr: 8, first: 2048, last: 4095 },
            OwnAddress { b4: b1, addr: 8, first: 4096, last: 6143 },
        ];
        let s = Statics::new(&[c]);
        assert_eq!(s.outbound(0, &b1, 9, Some(1)), None, "not an own address");
        assert_eq!(s.outbound(0, &b1, 7, Some(1)), Some(Ok(())));
        assert_eq!(s.outbound(0, &b2, 7, Some(1)), Some(Err(Counter::DropOwnAddressSpoofed)));
        assert_eq!(s.outbound(0, &b2, 8, Some(4095)), Some(Ok(())));
        assert_eq!(s.outbound(0, &b2, 8, Some(4096)), Some(Err(Counter::DropOwnAddressPort)));
        assert_eq!(s.outbound(1, &b2, 8, Some(3000)), Some(Err(Counter::DropOwnAddressSpoofed)), "other instance");
        assert_eq!(s.inbound(8, Some(5000)).map(|r| r.map(|o| o.b4)), Some(Ok(b1)));
        assert_eq!(s.inbound(8, Some(2047)).map(|r| r.map(|o| o.b4)), Some(Err(Counter::DropOwnAddressPort)));
        assert_eq!(s.inbound(8, None).map(|r| r.map(|o| o.b4)), Some(Err(Counter::DropOwnAddressPort)));
        assert_eq!(s.inbound(7, None).map(|r| r.map(|o| o.b4)), Some(Ok(b1)));
        assert!(s.inbound(6, Some(1)).is_none());
    }
}

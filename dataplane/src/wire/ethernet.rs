//! Ethernet II frames with an optional 802.1Q tag.

use super::{WireError, WireResult, get_u16, set_u16};

pub const HEADER_LEN: usize = 14;
pub const VLAN_TAG_LEN: usize = 4;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_VLAN: u16 = 0x8100;

pub type Mac = [u8; 6];

/// The layer-2 facts the pipeline needs: where layer 3 starts and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Info {
    pub ethertype: u16,
    pub vlan: Option<u16>,
    pub l3_offset: usize,
}

/// Parses the Ethernet header (one 802.1Q tag at most; QinQ is left to the kernel).
pub fn parse(frame: &[u8]) -> WireResult<L2Info> {
    if frame.len() < HEADER_LEN {
        return Err(WireError::Truncated);
    }
    let ethertype = get_u16(frame, 12);
    if ethertype == ETHERTYPE_VLAN {
        if frame.len() < HEADER_LEN + VLAN_TAG_LEN {
            return Err(WireError::Truncated);
        }
        return Ok(L2Info {
            ethertype: get_u16(frame, 16),
            vlan: Some(get_u16(frame, 14) & 0x0fff),
            l3_offset: HEADER_LEN + VLAN_TAG_LEN,
        });
    }
    Ok(L2Info { ethertype, vlan: None, l3_offset: HEADER_LEN })
}

/// Length of the header [`write_header`] writes.
#[inline]
pub fn header_len(vlan: Option<u16>) -> usize {
    if vlan.is_some() { HEADER_LEN + VLAN_TAG_LEN } else { HEADER_LEN }
}

/// Writes a complete Ethernet header at the start of `buf`; returns its length.
pub fn write_header(buf: &mut [u8], dst: Mac, src: Mac, vlan: Option<u16>, ethertype: u16) -> usize {
    buf[0..6].copy_from_slice(&dst);
    buf[6..12].copy_from_slice(&src);
    match vlan {
        Some(id) => {
            set_u16(buf, 12, ETHERTYPE_VLAN);
            set_u16(buf, 14, id & 0x0fff);
            set_u16(buf, 16, ethertype);
            HEADER_LEN + VLAN_TAG_LEN
        }
        None => {
            set_u16(buf, 12, ethertype);
            HEADER_LEN
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tagged_and_untagged() {
        let mut f = [0u8; 64];
        write_header(&mut f, [1; 6], [2; 6], None, ETHERTYPE_IPV6);
        assert_eq!(parse(&f).unwrap(), L2Info { ethertype: ETHERTYPE_IPV6, vlan: None, l3_offset: 14 });
        let n = write_header(&mut f, [1; 6], [2; 6], Some(100), ETHERTYPE_IPV4);
        assert_eq!(n, 18);
        assert_eq!(&f[12..18], &[0x81, 0x00, 0x00, 100, 0x08, 0x00]);
        assert_eq!(parse(&f).unwrap(), L2Info { ethertype: ETHERTYPE_IPV4, vlan: Some(100), l3_offset: 18 });
        assert_eq!(parse(&f[..13]), Err(WireError::Truncated));
        assert_eq!(parse(&f[..16]), Err(WireError::Truncated));
    }
}

//! Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Hot path: the NAT rewrites addresses and ports in place and fixes the checksums with
//! [`adjust_u16`]/[`adjust_u32`] instead of summing the packet again. Tests cross-check
//! every incremental update against a full recomputation.

/// One's complement sum of `data` added to `initial`, not folded.
#[inline]
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc = initial as u64;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        // Add the four 16-bit words of `v` without overflow.
        acc += (v >> 48) + ((v >> 32) & 0xffff) + ((v >> 16) & 0xffff) + (v & 0xffff);
    }
    let rest = chunks.remainder();
    let mut words = rest.chunks_exact(2);
    for w in &mut words {
        acc += u16::from_be_bytes([w[0], w[1]]) as u64;
    }
    if let [last] = words.remainder() {
        acc += (*last as u64) << 8;
    }
    fold64(acc)
}

#[inline]
fn fold64(mut acc: u64) -> u32 {
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Folds a 32-bit one's complement accumulator to 16 bits.
#[inline]
pub fn fold(mut acc: u32) -> u16 {
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// The checksum field value for `data` (the field itself must be zero in `data`).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// Pseudo-header sum for IPv4 (RFC 768, RFC 793).
#[inline]
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u32 {
    let s = sum(&src, 0);
    let s = sum(&dst, s);
    s + proto as u32 + len as u32
}

/// Pseudo-header sum for IPv6 (RFC 8200 section 8.1).
#[inline]
pub fn pseudo_v6(src: &[u8; 16], dst: &[u8; 16], next_header: u8, len: u32) -> u32 {
    let s = sum(src, 0);
    let s = sum(dst, s);
    fold64(s as u64 + (len >> 16) as u64 + (len & 0xffff) as u64 + next_header as u64)
}

/// RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')` for one 16-bit word changing from `old` to `new`.
#[inline]
pub fn adjust_u16(csum: u16, old: u16, new: u16) -> u16 {
    let acc = (!csum as u32) + (!old as u32) + new as u32;
    !fold(acc)
}

/// RFC 1624 for a 32-bit field (two words), e.g. an IPv4 address.
#[inline]
pub fn adjust_u32(csum: u16, old: u32, new: u32) -> u16 {
    let acc = (!csum as u32) + (!(old >> 16) as u16 as u32) + (!(old as u16) as u32) + (new >> 16) + (new & 0xffff);
    !fold(acc)
}

/// Adjusts a checksum for a change of `old` to `new` bytes of equal, even length.
#[inline]
pub fn adjust_bytes(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len());
    let acc = (!csum as u32) + (!fold(sum(old, 0)) as u32) + fold(sum(new, 0)) as u32;
    !fold(acc)
}

/// Adjusts a checksum for an address/port rewrite: the address and port appear in both the
/// IP header (address only) and the transport pseudo-header.
#[inline]
pub fn adjust_addr_port(csum: u16, old_addr: u32, new_addr: u32, old_port: u16, new_port: u16) -> u16 {
    adjust_u16(adjust_u32(csum, old_addr, new_addr), old_port, new_port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56], 0)), 0x1234 + 0x5600);
    }

    proptest! {
        #[test]
        fn incremental_matches_full(mut data in proptest::collection::vec(any::<u8>(), 8..200),
                                    pos in 0usize..100, new32 in any::<u32>(), new16 in any::<u16>()) {
            let pos = (pos % ((data.len() - 6) / 2)) * 2;
            let c0 = checksum(&data);
            let old32 = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap());
            let old16 = u16::from_be_bytes(data[pos + 4..pos + 6].try_into().unwrap());
            data[pos..pos + 4].copy_from_slice(&new32.to_be_bytes());
            data[pos + 4..pos + 6].copy_from_slice(&new16.to_be_bytes());
            let full = checksum(&data);
            let inc = adjust_addr_port(c0, old32, new32, old16, new16);
            // 0x0000 and 0xffff are the same number in one's complement.
            prop_assert!(inc == full || (inc == 0xffff && full == 0) || (inc == 0 && full == 0xffff),
                "inc {inc:#x} full {full:#x}");
        }
    }
}

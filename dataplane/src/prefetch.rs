//! Software prefetch: asks the CPU to bring a cache line in before it is needed, so the
//! table lookups of a batch of packets overlap their cache misses (VPP's dual/quad loop
//! idea). The only `unsafe` of the engine outside the I/O rings.
#![allow(unsafe_code)]

/// Hints that `*p` will be read soon. Never faults, whatever `p` is.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it does not access memory architecturally and never
    // faults, even for an invalid address (Intel SDM, PREFETCHh). `_mm_prefetch` needs
    // SSE, which every x86_64 CPU has (it is in the target's baseline features).
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

//! Memory of the big tables: asks the kernel to back them with transparent huge pages,
//! so random lookups over millions of sessions do not miss the TLB on every access
//! (what DPDK and VPP get from hugetlbfs). Only a hint: without THP the tables work the
//! same, just slower. One of the two modules of the engine that may use `unsafe`.
#![allow(unsafe_code)]

const HUGE_PAGE: usize = 2 << 20;

/// Advises huge pages for the 2 MiB-aligned part of the allocation `[ptr, ptr + bytes)`.
/// Returns true if the kernel took the advice (false for small or unaligned ranges and
/// where THP is off).
pub fn advise_huge_pages(ptr: *const u8, bytes: usize) -> bool {
    let start = (ptr as usize).next_multiple_of(HUGE_PAGE);
    let end = (ptr as usize + bytes) & !(HUGE_PAGE - 1);
    if end <= start {
        return false;
    }
    // SAFETY: the range lies inside one live allocation the caller owns (its bounds are
    // derived from that allocation's pointer and size, rounded inwards). MADV_HUGEPAGE
    // changes only how the kernel backs the pages, never their contents, mapping or
    // validity, so no Rust invariant depends on it.
    unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) == 0 }
}

/// [`advise_huge_pages`] over a vector's whole capacity.
pub fn advise_vec<T>(v: &Vec<T>) -> bool {
    advise_huge_pages(v.as_ptr() as *const u8, v.capacity() * std::mem::size_of::<T>())
}

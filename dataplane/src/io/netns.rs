//! Entering a named network namespace (`ip netns add NAME` makes `/run/netns/NAME`).
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;

/// Moves the calling thread into namespace `name`. Other threads are not affected.
pub fn enter(name: &str) -> std::io::Result<()> {
    let f = std::fs::File::open(format!("/run/netns/{name}"))?;
    // SAFETY: `f` is an open file descriptor of a network namespace for the whole call;
    // setns only changes the calling thread's namespace and touches no memory of ours.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

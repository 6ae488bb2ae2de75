//! b4: a user-space DS-Lite B4 (RFC 6333 section 6) on a TUN device, for tests and
//! demos: the kernel here has no ip6tnl, so this program is the softwire's subscriber
//! end. IPv4 packets of the namespace go into the TUN device, out as IPv6 packets with
//! next header 4 from the B4 address to the AFTR endpoint; softwire packets from the
//! AFTR come back into the TUN device. Real programs (curl, iperf3, ping) then run over
//! the softwire.
//!
//! Usage: b4 --b4 ADDR6 --aftr ADDR6 [--tun NAME] [--ipv4 ADDR] [--mtu N]
//! With `--ipv4`, it configures the namespace: the TUN device up with that address,
//! MTU (default 1460: a 1500-byte IPv6 path less 40) and the IPv4 default route.

use bench::measure::{arg, known_options};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};
use std::process::{Command, ExitCode};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

fn ip(args: &[&str]) -> std::io::Result<()> {
    let s = Command::new("ip").args(args).status()?;
    if s.success() { Ok(()) } else { Err(std::io::Error::other(format!("ip {} failed", args.join(" ")))) }
}

const USAGE: &str = "usage: b4 --b4 ADDR6 --aftr ADDR6 [--tun NAME] [--ipv4 ADDR] [--mtu N]";

/// The B4 address, the AFTR endpoint, the TUN name, the IPv4 address and the MTU.
type Options = (Ipv6Addr, Ipv6Addr, String, Option<Ipv4Addr>, u32);

fn options(args: &[String]) -> Result<Options, String> {
    known_options(args, &["--b4", "--aftr", "--tun", "--ipv4", "--mtu"], &[])?;
    let (Some(b4), Some(aftr)) = (arg(args, "--b4")?, arg(args, "--aftr")?) else {
        return Err(USAGE.into());
    };
    let name = arg(args, "--tun")?.unwrap_or_else(|| "b4tun".into());
    Ok((b4, aftr, name, arg(args, "--ipv4")?, arg(args, "--mtu")?.unwrap_or(1460)))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (b4, aftr, name, ipv4, mtu) = match options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("b4: {e}");
            return ExitCode::from(2);
        }
    };
    match run(b4, aftr, &name, ipv4, mtu) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("b4: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(b4: Ipv6Addr, aftr: Ipv6Addr, name: &str, ipv4: Option<Ipv4Addr>, mtu: u32) -> std::io::Result<()> {
    let mut tun_rx = bench::tun::open(name)?;
    let mut tun_tx = tun_rx.try_clone()?;
    if let Some(a) = ipv4 {
        ip(&["link", "set", name, "mtu", &mtu.to_string(), "up"])?;
        ip(&["addr", "add", &format!("{a}/32"), "dev", name])?;
        ip(&["route", "add", "default", "dev", name])?;
    }
    // A raw IPv6 socket for next header 4: the kernel writes the outer header on the way
    // out and delivers softwire packets addressed to us (without their IPv6 header).
    // Connected to the AFTR endpoint, it receives only what comes from there.
    let raw = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(4)))?;
    raw.bind(&SockAddr::from(SocketAddrV6::new(b4, 0, 0, 0)))?;
    raw.connect(&SockAddr::from(SocketAddrV6::new(aftr, 0, 0, 0)))?;
    let up = raw.try_clone()?;
    eprintln!("b4: {name} <-> softwire {b4} -> {aftr}");
    std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = vec![0u8; 65536];
        loop {
            let n = tun_rx.read(&mut buf)?;
            // Only IPv4 goes into the softwire (RFC 6333 section 6.1).
            // A send refused for a moment (the endpoint's neighbour entry is being
            // resolved again, an AFTR is failing over) loses that packet, as a router
            // would, and never the B4.
            if n >= 20 && buf[0] >> 4 == 4 {
                let _ = up.send(&buf[..n]);
            }
        }
    });
    let mut down = raw;
    let mut buf = vec![0u8; 65536];
    loop {
        // A connected raw socket reports ICMPv6 errors about the path as read errors:
        // they end no softwire.
        let Ok(n) = down.read(&mut buf) else { continue };
        if n >= 20 && buf[0] >> 4 == 4 {
            tun_tx.write_all(&buf[..n])?;
        }
    }
}

//! One configuration for the chassis: a commit on one board goes to every other board
//! the configuration names, over TCP to the board's `ha-address` (the HA port number),
//! authenticated with `service-ha preshared-key`, in two phases: every board that
//! answers checks it, and only if all accept does each apply it. A board that cannot be
//! reached is reported and left out; the configuration digest in the heartbeats shows
//! it differs until it gets the same configuration.
//!
//! A request is one line, `PHASE NONCE TIME TAG`, then the configuration text; the tag
//! is an HMAC-SHA256 over everything else, with a key of its own derived from the
//! secret ([`key`]). A reply is `ok TAG` or `error TAG`, then text, tagged over the
//! request's nonce too. The receiver refuses a request more than a minute away from its
//! clock, and a nonce it has seen.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ha_sync::wire::{Key, Secret};

/// The key of chassis commits, derived from the HA secret: every board of the
/// chassis has it, and no tag of the HA channels is worth anything here, nor the
/// other way round.
pub fn key(secret: &Secret) -> Key {
    Key::derive(secret, b"aftr-ha chassis-commit v1")
}

/// The two phases of a chassis commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Check the configuration and hold it.
    Prepare,
    /// Apply the configuration held under this nonce.
    Apply,
}

impl Phase {
    fn word(self) -> &'static str {
        match self {
            Phase::Prepare => "prepare",
            Phase::Apply => "apply",
        }
    }
}

/// How far a request's time may be from the receiver's clock.
const SKEW_SECS: u64 = 60;
const CONNECT: Duration = Duration::from_secs(1);
const ANSWER: Duration = Duration::from_secs(15);

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn signed_request(phase: Phase, nonce: u64, time: u64, text: &str) -> Vec<u8> {
    format!("aftr-commit 1\n{}\n{nonce:016x}\n{time}\n{text}", phase.word()).into_bytes()
}

fn signed_reply(nonce: u64, ok: bool, text: &str) -> Vec<u8> {
    format!("aftr-commit-reply 1\n{nonce:016x}\n{}\n{text}", if ok { "ok" } else { "error" }).into_bytes()
}

/// A fresh random nonce (from the kernel).
pub fn nonce() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    u64::from_ne_bytes(b) ^ SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// A request of `phase` for `text`, signed with `key`.
pub fn request(key: &Key, phase: Phase, nonce: u64, text: &str) -> Vec<u8> {
    let time = unix_now();
    let tag = key.tag(&signed_request(phase, nonce, time, text));
    let mut out = format!("{} {nonce:016x} {time} {}\n", phase.word(), hex(&tag)).into_bytes();
    out.extend_from_slice(text.as_bytes());
    out
}

/// A received request, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub phase: Phase,
    pub nonce: u64,
    pub text: String,
}

/// The receiving side's memory of nonces, against replays.
#[derive(Default)]
pub struct Replay {
    seen: HashMap<(Phase, u64), u64>,
}

impl Replay {
    /// Checks a request's form, tag, time and nonce; remembers the nonce.
    pub fn check(&mut self, key: &Key, bytes: &[u8]) -> Result<Request, String> {
        let now = unix_now();
        self.seen.retain(|_, t| now.saturating_sub(*t) <= 2 * SKEW_SECS);
        let text = std::str::from_utf8(bytes).map_err(|_| "a request that is not text".to_string())?;
        let (first, body) = text.split_once('\n').unwrap_or((text, ""));
        let words: Vec<&str> = first.split_whitespace().collect();
        let [phase, nonce, time, tag] = words[..] else { return Err("a malformed request".into()) };
        let phase = match phase {
            "prepare" => Phase::Prepare,
            "apply" => Phase::Apply,
            _ => return Err(format!("an unknown phase `{phase}`")),
        };
        let nonce = u64::from_str_radix(nonce, 16).map_err(|_| "a malformed nonce".to_string())?;
        let time: u64 = time.parse().map_err(|_| "a malformed time".to_string())?;
        let tag = unhex(tag).ok_or("a malformed tag")?;
        if !key.verify(&signed_request(phase, nonce, time, body), &tag) {
            return Err("a request that does not carry the pre-shared key's tag".into());
        }
        if now.abs_diff(time) > SKEW_SECS {
            return Err(format!("a request {} s away from this board's clock", now.abs_diff(time)));
        }
        if self.seen.insert((phase, nonce), now).is_some() {
            return Err("a replayed request".into());
        }
        Ok(Request { phase, nonce, text: body.to_string() })
    }
}

/// A reply to the request with `nonce`, signed with `key`.
pub fn reply(key: &Key, nonce: u64, ok: bool, text: &str) -> Vec<u8> {
    let tag = key.tag(&signed_reply(nonce, ok, text));
    let mut out = format!("{} {}\n", if ok { "ok" } else { "error" }, hex(&tag)).into_bytes();
    out.extend_from_slice(text.as_bytes());
    out
}

/// Checks a reply to the request with `nonce`: whether the board accepted, and its text.
pub fn check_reply(key: &Key, nonce: u64, bytes: &[u8]) -> Result<(bool, String), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "a reply that is not text".to_string())?;
    let (first, body) = text.split_once('\n').unwrap_or((text, ""));
    let (status, tag) = first.split_once(' ').ok_or("a malformed reply")?;
    let ok = match status {
        "ok" => true,
        "error" => false,
        _ => return Err("a malformed reply".into()),
    };
    let tag = unhex(tag).ok_or("a malformed reply tag")?;
    if !key.verify(&signed_reply(nonce, ok, body), &tag) {
        return Err("a reply that does not carry the pre-shared key's tag".into());
    }
    Ok((ok, body.to_string()))
}

/// What asking one board gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It answered: accepted (or applied), or refused with the reason.
    Said(bool, String),
    /// It could not be reached (not running, or no route).
    Unreachable(String),
}

/// Sends `phase` of a commit to the board at `addr` and waits for its answer.
pub fn ask(addr: SocketAddr, key: &Key, phase: Phase, nonce: u64, text: &str) -> Answer {
    let mut s = match TcpStream::connect_timeout(&addr, CONNECT) {
        Ok(s) => s,
        Err(e) => return Answer::Unreachable(e.to_string()),
    };
    let _ = s.set_read_timeout(Some(ANSWER));
    let _ = s.set_write_timeout(Some(ANSWER));
    let sent = s.write_all(&request(key, phase, nonce, text)).and_then(|_| s.shutdown(std::net::Shutdown::Write));
    if let Err(e) = sent {
        return Answer::Said(false, format!("the request could not be sent: {e}"));
    }
    let mut got = Vec::new();
    if let Err(e) = s.read_to_end(&mut got) {
        return Answer::Said(false, format!("no answer: {e}"));
    }
    match check_reply(key, nonce, &got) {
        Ok((ok, text)) => Answer::Said(ok, text),
        Err(e) => Answer::Said(false, format!("refused its answer: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chassis_key_is_derived_from_the_secret_and_its_own() {
        let secret = Secret::new(*b"lab-only-secret-0123456789");
        let r = request(&key(&secret), Phase::Prepare, 1, "sysname a\n");
        assert!(Replay::default().check(&key(&secret), &r).is_ok());
        // Neither the secret itself nor an HA channel's key signs a commit.
        let at: SocketAddr = "192.0.2.1:62000".parse().unwrap();
        let link = Key::pair(&secret, ha_sync::wire::Purpose::Link, (1, at), (2, at));
        for other in [Key::new(secret.expose()), link] {
            assert!(Replay::default().check(&other, &r).unwrap_err().contains("tag"));
        }
    }

    #[test]
    fn requests_and_replies_are_authenticated_and_not_replayed() {
        let key = Key::new(b"lab-only-secret");
        let mut replay = Replay::default();
        let r = request(&key, Phase::Prepare, 42, "sysname a\n");
        assert_eq!(
            replay.check(&key, &r),
            Ok(Request { phase: Phase::Prepare, nonce: 42, text: "sysname a\n".into() })
        );
        assert_eq!(replay.check(&key, &r), Err("a replayed request".into()));
        // The same nonce in the other phase is another request.
        assert!(replay.check(&key, &request(&key, Phase::Apply, 42, "sysname a\n")).is_ok());
        // Another key, or a changed text, is refused.
        let other = Key::new(b"another-secret");
        assert!(replay.check(&key, &request(&other, Phase::Prepare, 43, "x")).unwrap_err().contains("tag"));
        let mut forged = request(&key, Phase::Prepare, 44, "sysname a\n");
        let n = forged.len();
        forged[n - 2] = b'b';
        assert!(replay.check(&key, &forged).unwrap_err().contains("tag"));
        assert!(replay.check(&key, b"prepare nonsense").is_err());
        assert!(replay.check(&key, &[0xff, 0xfe]).is_err());

        // A request from a clock more than a minute away is refused.
        let old = unix_now() - 3600;
        let tag = key.tag(&signed_request(Phase::Prepare, 45, old, "x"));
        let stale = format!("prepare {:016x} {old} {}\nx", 45, hex(&tag));
        assert!(replay.check(&key, stale.as_bytes()).unwrap_err().contains("away from this board's clock"));

        let a = reply(&key, 42, true, "checked\n");
        assert_eq!(check_reply(&key, 42, &a), Ok((true, "checked\n".into())));
        assert!(check_reply(&key, 43, &a).is_err(), "a reply to another request");
        assert!(check_reply(&other, 42, &a).is_err());
    }
}

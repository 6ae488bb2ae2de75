//! Starting the processes of a benchmark and knowing that they started: each start
//! waits for the process's own sign of life, within a time limit, and a failure says
//! what came instead (a benchmark must not measure around a process that is not there).

use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The first line `from` gives within `secs`, read on a thread of its own (a process
/// that hangs must not hang the benchmark); later lines go on to this process's stderr,
/// so that what the process says afterwards is seen and its pipe never fills or closes.
pub fn first_line(from: impl Read + Send + 'static, what: &str, secs: u64) -> Result<String, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(from).lines().map_while(Result::ok);
        let _ = tx.send(lines.next());
        for l in lines {
            eprintln!("{l}");
        }
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Some(line)) => Ok(line),
        Ok(None) => Err(format!("{what} ended without a word")),
        Err(_) => Err(format!("{what} said nothing within {secs} s")),
    }
}

/// Waits until the management socket `sock` of the daemon `child` (`what`, writing to
/// `log`) answers, within 10 s; an error with the end of its log when it ends before,
/// or never opens the socket.
pub fn wait_for_socket(child: &mut Child, sock: &Path, log: &Path, what: &str) -> Result<(), String> {
    let t = Instant::now();
    while UnixStream::connect(sock).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} ended ({status}): {}", tail(log)));
        }
        if t.elapsed() > Duration::from_secs(10) {
            return Err(format!("{what} opened no management socket within 10 s: {}", tail(log)));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// The last lines of a file (a daemon's log), on one line, for an error message.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_says_what_came_or_that_nothing_did() {
        assert_eq!(first_line(&b"ready\nmore\n"[..], "x", 1), Ok("ready".into()));
        assert_eq!(first_line(&b""[..], "the server", 1), Err("the server ended without a word".into()));
        let (r, _w) = std::io::pipe().unwrap();
        assert_eq!(first_line(r, "the B4", 0), Err("the B4 said nothing within 0 s".into()));
    }
}

//! The HA secret (`service-ha preshared-key`): how long a key must be, where it is read
//! from (the configuration, a file, a systemd credential), and the mask that every
//! display prints instead of it. The keys of the HA channel, the witness and chassis
//! commits are derived from it (decision 0007). No message of this module quotes a key.

use std::path::{Path, PathBuf};

use crate::config::{Config, KeySource, Pos, Secret};
use crate::error::{ConfigError, Positions};

/// What displays print for an inline key; read back, it stands for the running key.
pub const MASK: &str = "******";
/// A key carries at least 128 bits only if it is long enough: 22 characters of base64
/// carry 132.
pub const MIN_CHARS: usize = 22;
/// The longest key typed in the configuration.
pub const MAX_CHARS: usize = 128;
/// The largest key file or credential read.
const MAX_FILE: usize = 4096;
/// How to make a good key, for the errors that refuse a bad one.
pub const HOW_TO_MAKE: &str = "make one with `openssl rand -base64 24`";
/// Where the key statement is, in a configuration's positions.
pub const STATEMENT: &str = "service-ha preshared-key";
/// The environment variable systemd sets for a service with `LoadCredential=`.
const CREDENTIALS: &str = "CREDENTIALS_DIRECTORY";

/// The directory of this process's systemd credentials, if it has one.
pub fn credentials_directory() -> Option<PathBuf> {
    std::env::var_os(CREDENTIALS).map(PathBuf::from)
}

/// How the statement prints: an inline key masked, unless `in_clear` (what `save`
/// writes, which must read back to the same key).
pub fn statement(source: &KeySource, in_clear: bool) -> String {
    let what = match source {
        KeySource::Inline(s) if in_clear => String::from_utf8_lossy(s.expose()).into_owned(),
        KeySource::Inline(_) | KeySource::Running => MASK.to_string(),
        KeySource::File(p) => format!("file {}", p.display()),
        KeySource::Credential(name) => format!("credential {name}"),
    };
    format!("{STATEMENT} {what}")
}

/// The secret `source` names: the inline key, or the content of its file or credential
/// (a final newline is not part of it), at least [`MIN_CHARS`] long.
pub fn load(source: &KeySource, credentials: Option<&Path>) -> Result<Secret, String> {
    let (bytes, from) = match source {
        KeySource::Inline(s) => return Ok(s.clone()),
        KeySource::Running => return Err(no_running_key()),
        KeySource::File(p) => (read(p)?, format!("key file {}", p.display())),
        KeySource::Credential(name) => {
            let Some(dir) = credentials else {
                return Err(format!(
                    "credential {name}: ${CREDENTIALS} is not set; systemd sets it for a service with \
                     `LoadCredential={name}:/etc/aftr/ha.key` (see deploy/aftrd@.service)"
                ));
            };
            (read(&dir.join(name))?, format!("credential {name}"))
        }
    };
    let key = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    let key = key.strip_suffix(b"\r").unwrap_or(key);
    if key.len() < MIN_CHARS {
        return Err(format!(
            "the {from} holds {} bytes; a key needs at least {MIN_CHARS} (128 bits): {HOW_TO_MAKE}",
            key.len()
        ));
    }
    Ok(Secret::new(key))
}

fn no_running_key() -> String {
    format!(
        "`{MASK}` stands for the key this board runs with, and it runs with none: give the key, \
         `file PATH` or `credential NAME`"
    )
}

/// At most [`MAX_FILE`] bytes of `path`.
fn read(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?;
    if bytes.len() > MAX_FILE {
        return Err(format!("the key file {} is longer than {MAX_FILE} bytes", path.display()));
    }
    Ok(bytes)
}

/// Makes `c`'s key ready to run: `******` becomes the key of `running` (the
/// configuration the board runs, if any), and the key is read. Returns the secret, or
/// None without a key; an error points at the statement, and then nothing may be
/// applied.
pub fn resolve(
    c: &mut Config,
    pos: &Positions,
    running: Option<&Config>,
    credentials: Option<&Path>,
) -> Result<Option<Secret>, ConfigError> {
    let at = pos.get(STATEMENT).copied().unwrap_or(Pos { line: 0, column: 0 });
    if c.ha.key == Some(KeySource::Running) {
        c.ha.key = running.and_then(|r| r.ha.key.clone()).filter(|k| *k != KeySource::Running);
        if c.ha.key.is_none() {
            return Err(ConfigError::at(at, no_running_key()));
        }
    }
    c.ha.key.as_ref().map(|k| load(k, credentials)).transpose().map_err(|e| ConfigError::at(at, e))
}

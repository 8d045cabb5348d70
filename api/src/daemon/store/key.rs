//! The user's own ed25519 key, which signs every entry the user makes.
//!
//! `<state>/ed25519.key` holds the 32-byte secret seed, raw, readable by the owner only (mode
//! 0600). It is made on first start; a file of the wrong length is moved aside (one log line)
//! and a new key is made, so a damaged key never stops the daemon.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use ed25519_dalek::SigningKey;
use rand::{RngCore, SeedableRng};

/// The key file's name in the state directory.
pub const KEY_FILE: &str = "ed25519.key";

/// Loads the key of `state_dir`, making it on first start.
pub fn load_or_create(state_dir: &Path) -> Result<SigningKey, String> {
    let path = state_dir.join(KEY_FILE);
    match fs::read(&path) {
        Ok(bytes) => match <[u8; 32]>::try_from(bytes.as_slice()) {
            Ok(seed) => {
                restrict(&path)?;
                return Ok(SigningKey::from_bytes(&seed));
            }
            Err(_) => {
                let aside = path.with_extension(format!("key.bad-{}", std::process::id()));
                eprintln!(
                    "shoal daemon: {} is not a 32-byte key; moved to {} and making a new one",
                    path.display(),
                    aside.display()
                );
                fs::rename(&path, &aside).map_err(|e| format!("cannot move {} aside: {e}", path.display()))?;
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let mut seed = [0u8; 32];
    rand::rngs::StdRng::from_os_rng().fill_bytes(&mut seed);
    write_private(&path, &seed).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes a new file readable by the owner only: created 0600 under a temporary name, synced,
/// then renamed, so the secret is never readable by others, not even for a moment.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)
}

/// Makes an existing key file owner-only again if someone loosened it.
fn restrict(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::metadata(path).map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
    }
    Ok(())
}

//! The secrets a process generates for itself in embedded mode: the admin
//! token and the master key, each in a 0600 file under the data dir. A
//! value given in the environment always wins and is never written.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use tollgate_core::apikey::random_bytes;

pub const ADMIN_TOKEN_FILE: &str = "admin.token";
pub const MASTER_KEY_FILE: &str = "master.key";

#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("cannot use {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is empty")]
    Empty { path: PathBuf },
    #[error(transparent)]
    Random(#[from] tollgate_core::apikey::RandomError),
}

/// A secret and whether this call created it (so it is shown once).
pub struct Loaded {
    pub value: String,
    pub created: bool,
}

/// The admin token: `TOLLGATE_ADMIN_TOKEN` if set, else the token file,
/// else a new random token written to the file.
pub fn admin_token(data_dir: &Path, from_env: Option<String>) -> Result<Loaded, SecretFileError> {
    load_or_create(data_dir, ADMIN_TOKEN_FILE, from_env, |bytes| {
        format!("tga-{}", URL_SAFE_NO_PAD.encode(bytes))
    })
}

/// The master key (base64 of 32 bytes): `TOLLGATE_MASTER_KEY` if set, else
/// the key file, else a new random key written to the file.
pub fn master_key(data_dir: &Path, from_env: Option<String>) -> Result<Loaded, SecretFileError> {
    load_or_create(data_dir, MASTER_KEY_FILE, from_env, |bytes| {
        STANDARD.encode(bytes)
    })
}

fn load_or_create(
    data_dir: &Path,
    name: &str,
    from_env: Option<String>,
    encode: impl Fn(&[u8]) -> String,
) -> Result<Loaded, SecretFileError> {
    if let Some(value) = from_env.filter(|value| !value.trim().is_empty()) {
        return Ok(Loaded {
            value: value.trim().to_owned(),
            created: false,
        });
    }
    let path = data_dir.join(name);
    let io = |source| SecretFileError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let value = text.trim().to_owned();
            if value.is_empty() {
                return Err(SecretFileError::Empty { path });
            }
            return Ok(Loaded {
                value,
                created: false,
            });
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(io(err)),
    }
    let mut bytes = [0u8; 32];
    random_bytes(&mut bytes)?;
    let value = encode(&bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(io)?;
    file.write_all(format!("{value}\n").as_bytes())
        .map_err(io)?;
    Ok(Loaded {
        value,
        created: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_then_reads_back() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let first = admin_token(dir.path(), None)?;
        assert!(first.created);
        assert!(first.value.starts_with("tga-"));
        let again = admin_token(dir.path(), None)?;
        assert!(!again.created);
        assert_eq!(again.value, first.value);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(ADMIN_TOKEN_FILE))?
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        Ok(())
    }

    #[test]
    fn environment_wins_and_is_not_written() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let key = master_key(dir.path(), Some("abc".into()))?;
        assert_eq!(key.value, "abc");
        assert!(!dir.path().join(MASTER_KEY_FILE).exists());
        let generated = master_key(dir.path(), None)?;
        assert_eq!(STANDARD.decode(generated.value)?.len(), 32);
        Ok(())
    }
}

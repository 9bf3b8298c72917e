//! Secrets read from files (hook secrets, tokens, webhook URLs): one type
//! whose value is never printed, and one way of reading it.

use std::fmt;
use std::path::{Path, PathBuf};

/// A secret. `Debug` shows `Secret(***)`; there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

/// Why a secret file could not be used. Never carries the content.
#[derive(Debug)]
pub enum SecretFileError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    Empty {
        path: PathBuf,
    },
}

impl Secret {
    /// Reads `path`, dropping one trailing newline (`\n` or `\r\n`) as
    /// editors and `kubectl create secret --from-file` leave it; an empty
    /// secret is an error.
    pub fn read_file(path: &Path) -> Result<Secret, SecretFileError> {
        let mut bytes = std::fs::read(path).map_err(|source| SecretFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        if bytes.is_empty() {
            return Err(SecretFileError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(Secret(bytes))
    }

    #[must_use]
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into())
    }

    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

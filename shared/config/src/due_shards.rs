//! The due index's shard counts, from the environment.

use crate::{var, ConfigError};

/// The due index's shard counts (`docs/scale.md`): step writers hash a
/// step into one of `write` shards; the sweep reads shards `0..read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueShards {
    /// Shards new and rescheduled steps are written to (`DUE_SHARDS`).
    pub write: u32,
    /// Shards the sweep reads: `write`, or the earlier count while steps
    /// written under it are still pending (`DUE_SHARDS_PREVIOUS`).
    pub read: u32,
}

/// The default number of due shards.
pub const DEFAULT_DUE_SHARDS: u32 = 4;

/// The most due shards a deployment may have.
pub const MAX_DUE_SHARDS: u32 = 64;

impl Default for DueShards {
    fn default() -> Self {
        Self {
            write: DEFAULT_DUE_SHARDS,
            read: DEFAULT_DUE_SHARDS,
        }
    }
}

/// Reads `DUE_SHARDS` (default 4) and `DUE_SHARDS_PREVIOUS` (default none),
/// each a whole number from 1 to 64. Raising the count needs nothing more:
/// every pending step sits in a shard below the old count, which the sweep
/// still reads. Lowering it leaves steps in shards the new count no longer
/// names, so the old count goes in `DUE_SHARDS_PREVIOUS` until the last
/// of them has come due.
pub fn due_shards_from_env() -> Result<DueShards, ConfigError> {
    due_shards_from(var)
}

/// [`due_shards_from_env`] over any lookup of variables.
pub fn due_shards_from(
    lookup: impl Fn(&'static str) -> Option<String>,
) -> Result<DueShards, ConfigError> {
    let count = |name: &'static str, least: u32| -> Result<Option<u32>, ConfigError> {
        match lookup(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (least..=MAX_DUE_SHARDS).contains(n))
                .map(Some)
                .ok_or(ConfigError::Invalid {
                    name,
                    reason: format!("a whole number from {least} to {MAX_DUE_SHARDS}"),
                }),
        }
    };
    let write = count("DUE_SHARDS", 1)?.unwrap_or(DEFAULT_DUE_SHARDS);
    // 0: no earlier count (what the template passes by default).
    let previous = count("DUE_SHARDS_PREVIOUS", 0)?.unwrap_or(0);
    Ok(DueShards {
        write,
        read: write.max(previous),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&'static str, &'static str)]) -> Result<DueShards, ConfigError> {
        due_shards_from(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn due_shards_default_to_four_and_read_the_higher_of_two_counts() {
        assert_eq!(with(&[]).unwrap(), DueShards { write: 4, read: 4 });
        assert_eq!(
            with(&[("DUE_SHARDS", "16"), ("DUE_SHARDS_PREVIOUS", "0")]).unwrap(),
            DueShards {
                write: 16,
                read: 16
            }
        );
        // Lowering from 16 to 4: the sweep keeps reading all sixteen.
        assert_eq!(
            with(&[("DUE_SHARDS", "4"), ("DUE_SHARDS_PREVIOUS", "16")]).unwrap(),
            DueShards { write: 4, read: 16 }
        );
        for (name, bad) in [
            ("DUE_SHARDS", "0"),
            ("DUE_SHARDS", "65"),
            ("DUE_SHARDS", "four"),
            ("DUE_SHARDS_PREVIOUS", "-1"),
        ] {
            let err = with(&[(name, bad)]).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains("whole number"), "{err}");
        }
    }
}

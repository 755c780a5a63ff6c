//! A list a warm dispatcher consults for every text (the running
//! experiments, the paused template versions), held in memory and checked
//! once per [`WarmList::TTL`] against its partition's change count: one
//! small read when nothing moved, the whole partition again only when it
//! did. A change reaches a warm dispatcher within the interval.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use optline_ports::PortError;

/// What a warm list holds: the list, the change count it was read at, and
/// when that count was last confirmed.
#[derive(Debug)]
struct Held<T> {
    checked: Instant,
    changes: u64,
    list: Vec<T>,
}

/// A list kept warm between texts; see the module's documentation.
#[derive(Debug)]
pub struct WarmList<T>(Mutex<Option<Held<T>>>);

impl<T> Default for WarmList<T> {
    fn default() -> Self {
        Self(Mutex::new(None))
    }
}

impl<T> WarmList<T> {
    /// How long the list is trusted before its change count is read again.
    pub const TTL: Duration = Duration::from_secs(30);

    /// `read` applied to the list: as held while the interval lasts; then
    /// as held if `changes` gives the count it was read at; else as `load`
    /// reads it now. The count is read before the list, so a change that
    /// lands between the two is read again at the next check.
    pub async fn get<R, C, L>(
        &self,
        changes: impl FnOnce() -> C,
        load: impl FnOnce() -> L,
        read: impl FnOnce(&[T]) -> R,
    ) -> Result<R, PortError>
    where
        C: Future<Output = Result<u64, PortError>>,
        L: Future<Output = Result<Vec<T>, PortError>>,
    {
        let started = Instant::now();
        let known = match self.0.lock() {
            Ok(held) => match held.as_ref() {
                Some(held) if held.checked.elapsed() < Self::TTL => return Ok(read(&held.list)),
                Some(held) => Some(held.changes),
                None => None,
            },
            Err(_) => None,
        };
        let count = changes().await?;
        if known == Some(count) {
            if let Ok(mut held) = self.0.lock() {
                if let Some(held) = held.as_mut().filter(|h| h.changes == count) {
                    held.checked = started;
                    return Ok(read(&held.list));
                }
            }
        }
        let list = load().await?;
        let answer = read(&list);
        if let Ok(mut held) = self.0.lock() {
            *held = Some(Held {
                checked: started,
                changes: count,
                list,
            });
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]
    use super::*;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    struct Source {
        changes: AtomicU64,
        counts_read: AtomicU32,
        lists_read: AtomicU32,
        list: Mutex<Vec<u32>>,
    }

    impl Source {
        fn new(list: Vec<u32>) -> Self {
            Self {
                changes: AtomicU64::new(0),
                counts_read: AtomicU32::new(0),
                lists_read: AtomicU32::new(0),
                list: Mutex::new(list),
            }
        }

        async fn read(&self, warm: &WarmList<u32>) -> Vec<u32> {
            warm.get(
                || async {
                    self.counts_read.fetch_add(1, Ordering::SeqCst);
                    Ok(self.changes.load(Ordering::SeqCst))
                },
                || async {
                    self.lists_read.fetch_add(1, Ordering::SeqCst);
                    Ok(self.list.lock().unwrap().clone())
                },
                <[u32]>::to_vec,
            )
            .await
            .unwrap()
        }

        fn change(&self, list: Vec<u32>) {
            *self.list.lock().unwrap() = list;
            self.changes.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Moves the held list's last check back past the interval.
    fn expire(warm: &WarmList<u32>) {
        let mut held = warm.0.lock().unwrap();
        let held = held.as_mut().unwrap();
        held.checked = Instant::now()
            .checked_sub(WarmList::<u32>::TTL + Duration::from_secs(1))
            .unwrap();
    }

    #[tokio::test]
    async fn reads_the_list_again_only_when_its_count_moved() {
        let source = Source::new(vec![1]);
        let warm = WarmList::default();
        // Cold: the count and the list.
        assert_eq!(source.read(&warm).await, vec![1]);
        assert_eq!(source.counts_read.load(Ordering::SeqCst), 1);
        assert_eq!(source.lists_read.load(Ordering::SeqCst), 1);
        // Inside the interval: nothing is read, even after a change.
        source.change(vec![1, 2]);
        assert_eq!(source.read(&warm).await, vec![1]);
        assert_eq!(source.counts_read.load(Ordering::SeqCst), 1);
        // Past it: the count moved, so the list is read again.
        expire(&warm);
        assert_eq!(source.read(&warm).await, vec![1, 2]);
        assert_eq!(source.counts_read.load(Ordering::SeqCst), 2);
        assert_eq!(source.lists_read.load(Ordering::SeqCst), 2);
        // Past it again with no change: the count only, and the interval
        // starts over.
        expire(&warm);
        assert_eq!(source.read(&warm).await, vec![1, 2]);
        assert_eq!(source.counts_read.load(Ordering::SeqCst), 3);
        assert_eq!(source.lists_read.load(Ordering::SeqCst), 2);
        assert_eq!(source.read(&warm).await, vec![1, 2]);
        assert_eq!(source.counts_read.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_failed_read_is_an_error_and_keeps_nothing() {
        let warm: WarmList<u32> = WarmList::default();
        let failed = warm
            .get(
                || async { Err(PortError::Unavailable("down".to_owned())) },
                || async { Ok(vec![1]) },
                <[u32]>::to_vec,
            )
            .await;
        assert!(failed.is_err());
        assert!(warm.0.lock().unwrap().is_none());
        let failed = warm
            .get(
                || async { Ok(3) },
                || async { Err(PortError::Unavailable("down".to_owned())) },
                <[u32]>::to_vec,
            )
            .await;
        assert!(failed.is_err());
        assert!(warm.0.lock().unwrap().is_none());
    }
}

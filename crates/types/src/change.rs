//! What changed on disk between two iterations of the dev loop.

use std::collections::BTreeSet;
use std::path::PathBuf;

/// Files that changed since the last iteration, coalesced: a file written then deleted is only
/// `deleted`; one deleted then written again is only `modified`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// Files created or written (absolute paths).
    pub modified: BTreeSet<PathBuf>,
    /// Files removed (absolute paths).
    pub deleted: BTreeSet<PathBuf>,
}

impl ChangeSet {
    /// Record a write; cancels an earlier deletion of the same path.
    pub fn record_modified(&mut self, path: PathBuf) {
        self.deleted.remove(&path);
        self.modified.insert(path);
    }

    /// Record a removal; cancels an earlier write of the same path.
    pub fn record_deleted(&mut self, path: PathBuf) {
        self.modified.remove(&path);
        self.deleted.insert(path);
    }

    /// Fold a later change set into this one.
    pub fn merge(&mut self, later: ChangeSet) {
        for path in later.deleted {
            self.record_deleted(path);
        }
        for path in later.modified {
            self.record_modified(path);
        }
    }

    /// No change at all.
    pub fn is_empty(&self) -> bool {
        self.modified.is_empty() && self.deleted.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_events_win() {
        let mut a = ChangeSet::default();
        a.record_modified("/p/x".into());
        let mut b = ChangeSet::default();
        b.record_deleted("/p/x".into());
        b.record_modified("/p/y".into());
        a.merge(b);
        assert!(a.modified.contains(&PathBuf::from("/p/y")));
        assert!(!a.modified.contains(&PathBuf::from("/p/x")));
        assert!(a.deleted.contains(&PathBuf::from("/p/x")));
    }
}

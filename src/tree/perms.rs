//! Owners and permission bits of the tree's entries. By default they come from the store's
//! own files, so that the kernel, which checks them itself (`default_permissions`), refuses
//! through the mount what the store's modes refuse: groups, arrays and `chunks/` show their
//! directory's, a chunk file its stored file's, the data views and documents those of the
//! array's metadata document. Shared mounts can override them (`uid=`, `gid=`, `umask=`,
//! `file_mode=`, `dir_mode=`, as sshfs and ntfs-3g do).

use crate::store::ObjectInfo;

/// Overrides of the owners and modes shown; `None` keeps the store's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ownership {
    /// Owner of every entry.
    pub uid: Option<u32>,
    /// Group of every entry.
    pub gid: Option<u32>,
    /// Permission bits cleared from every entry; alone, it makes files `0o666 & !umask`
    /// and directories `0o777 & !umask`.
    pub umask: Option<u32>,
    /// Permission bits of every file.
    pub file_mode: Option<u32>,
    /// Permission bits of every directory.
    pub dir_mode: Option<u32>,
}

/// Owner, group and permission bits of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Permission bits.
    pub mode: u32,
}

impl From<ObjectInfo> for Owner {
    fn from(info: ObjectInfo) -> Self {
        Owner {
            uid: info.uid,
            gid: info.gid,
            mode: info.mode & 0o777,
        }
    }
}

impl Owner {
    /// The same owner with only the permission bits in `mask`.
    pub fn masked(self, mask: u32) -> Self {
        Owner {
            mode: self.mode & mask,
            ..self
        }
    }
}

impl Ownership {
    /// What an entry shows for `owner` (as the store has it): the overrides applied, and no
    /// write bits when the entry cannot be written (read-only mounts, documents).
    pub fn show(&self, owner: Owner, directory: bool, writable: bool) -> Owner {
        let (mode, full) = if directory {
            (self.dir_mode, 0o777)
        } else {
            (self.file_mode, 0o666)
        };
        let mode = match (mode, self.umask) {
            (Some(mode), _) => mode,
            (None, Some(_)) => full,
            (None, None) => owner.mode,
        } & !self.umask.unwrap_or(0);
        Owner {
            uid: self.uid.unwrap_or(owner.uid),
            gid: self.gid.unwrap_or(owner.gid),
            mode: mode & if writable { 0o777 } else { 0o555 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORE: Owner = Owner {
        uid: 7,
        gid: 8,
        mode: 0o640,
    };

    #[test]
    fn the_store_shows_through_unless_overridden() {
        let none = Ownership::default();
        assert_eq!(none.show(STORE, false, true), STORE);
        assert_eq!(none.show(STORE, false, false).mode, 0o440);
        let dir = Owner {
            mode: 0o755,
            ..STORE
        };
        assert_eq!(none.show(dir, true, false).mode, 0o555, "x bits stay");
        let shared = Ownership {
            uid: Some(1000),
            gid: Some(100),
            umask: Some(0o027),
            ..Ownership::default()
        };
        let shown = shared.show(STORE, false, true);
        assert_eq!((shown.uid, shown.gid, shown.mode), (1000, 100, 0o640));
        assert_eq!(shared.show(dir, true, true).mode, 0o750);
        let modes = Ownership {
            file_mode: Some(0o664),
            dir_mode: Some(0o775),
            umask: Some(0o002),
            ..Ownership::default()
        };
        assert_eq!(modes.show(STORE, false, true).mode, 0o664);
        assert_eq!(modes.show(dir, true, false).mode, 0o555);
        assert_eq!(modes.show(STORE, false, true).uid, 7);
    }
}

//! A backend on a local directory.

use std::{
    fs::{self, DirBuilder, File, OpenOptions},
    io::{self, Read, Seek, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{Key, KeyInfo, Prefix, Storage, StorageError};

/// Directory (below the root) that holds lease files. Keys cannot start with
/// a dot, so it never collides with stored data.
const LEASE_DIR: &str = ".leases";
/// Prefix of temporary files that `put` renames into place.
const TEMP_PREFIX: &str = ".tmp-";

/// A [`Storage`] on a local directory.
///
/// - `put` writes a temporary file beside the target, fsyncs it, renames it
///   over the target and fsyncs the directory: a crash leaves the old value or
///   the new one, never a torn file.
/// - Every file is created `0600` and every directory `0700`: values include
///   private keys.
/// - Several processes may share one directory. Leases are files under
///   `.leases/`, read and written under an exclusive `flock`, with the expiry
///   as wall-clock time; a crashed holder's lease expires after its ttl (at
///   once when its process is gone). A released lease's file is deleted
///   (under its lock; a process that was waiting for that lock notices the
///   file is gone and starts over), so the directory holds about one file per
///   lease held, not one per lease ever taken. (`flock` is local to one
///   machine: for a fleet, use the PostgreSQL backend.)
/// - `stat` reports the file's size and mtime: the mtime has the
///   filesystem's resolution (see the [`Storage`] contract).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use cert_store::{FileStorage, Key, Storage};
/// let dir = tempfile::tempdir().unwrap();
/// let store = FileStorage::new(dir.path()).unwrap();
/// store.put(&Key::new("certs/a").unwrap(), b"pem").await.unwrap();
/// assert_eq!(store.list(&"certs".try_into().unwrap()).await.unwrap().len(), 1);
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct FileStorage {
    root: Arc<PathBuf>,
}

impl FileStorage {
    /// Opens (creating it `0700` if needed) the directory `root`.
    ///
    /// # Errors
    /// [`StorageError::Io`] when the directory cannot be created.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        create_dirs(&root)?;
        Ok(Self { root: Arc::new(root) })
    }

    /// The root directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> PathBuf {
        let mut path = (*self.root).clone();
        path.extend(key.split('/').filter(|s| !s.is_empty()));
        path
    }

    fn lease_path(&self, name: &Key) -> PathBuf {
        let mut path = self.root.join(LEASE_DIR);
        path.extend(name.segments());
        path
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&FileStorage) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|join| StorageError::backend(io::Error::other(join.to_string())))?
    }
}

fn create_dirs(dir: &Path) -> Result<(), StorageError> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| StorageError::io(dir, e))
}

fn write_atomically(path: &Path, value: &[u8]) -> Result<(), StorageError> {
    let dir = path.parent().unwrap_or(path);
    create_dirs(dir)?;
    let suffix: u64 = rand::rng().random();
    let tmp = dir.join(format!("{TEMP_PREFIX}{suffix:016x}"));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        file.write_all(value)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(StorageError::io(path, e));
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| StorageError::io(dir, e))
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<Key>) -> Result<(), StorageError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StorageError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if name.starts_with('.') {
            continue; // temp files, lease files
        }
        let key = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        let file_type = entry.file_type().map_err(|e| StorageError::io(entry.path(), e))?;
        if file_type.is_dir() {
            walk(&entry.path(), &key, out)?;
        } else if file_type.is_file()
            && let Ok(key) = Key::new(key)
        {
            out.push(key);
        }
    }
    Ok(())
}

/// What a lease file holds.
#[derive(Serialize, Deserialize)]
struct LeaseRecord {
    holder: String,
    expires_unix_ms: u128,
    /// The holding process (this machine): a lease whose process is gone is
    /// free at once instead of at its expiry. Absent in older records.
    #[serde(default)]
    process: Option<ProcessId>,
}

/// A process on this machine: pid plus its start time, so that a reused pid
/// is not mistaken for the holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct ProcessId {
    pid: u32,
    started: u64,
}

impl ProcessId {
    /// The start time (clock ticks since boot) of `pid`, from `/proc` (Linux).
    fn start_time(pid: u32) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Field 22; fields after the parenthesised command name, which may hold spaces.
        let after_name = stat.rsplit_once(')')?.1;
        after_name.split_whitespace().nth(19)?.parse().ok()
    }

    fn current() -> Option<Self> {
        let pid = std::process::id();
        Some(Self { pid, started: Self::start_time(pid)? })
    }

    /// Known to be gone: no such process, or another one with its pid.
    /// `false` when it cannot tell (no `/proc`): the expiry decides then.
    fn is_gone(self) -> bool {
        if !Path::new("/proc/self/stat").exists() {
            return false;
        }
        Self::start_time(self.pid) != Some(self.started)
    }
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// What to do with a lease file once `decide` has seen its record.
enum LeaseWrite {
    /// Leave the file as it is.
    Keep,
    /// Write this record.
    Record(LeaseRecord),
    /// The lease is free: delete the file (under the lock, see [`with_lease_file`]).
    Remove,
}

/// Whether `file` (open) is still the file at `path`: a lease file deleted by
/// a release while we waited for its lock is not the lease any more.
fn is_current(file: &File, path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let open = file.metadata()?;
    match fs::symlink_metadata(path) {
        Ok(at_path) => Ok(at_path.dev() == open.dev() && at_path.ino() == open.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Runs `decide` on the current lease record of `path` under an exclusive
/// `flock` and applies what it returns.
///
/// A free lease has no file: a release deletes the file while it still holds
/// the lock. Another process may have opened the same file before that and be
/// waiting for the lock; once it gets it, the file is no longer at `path`
/// (checked by device and inode), so it starts again on whatever is at
/// `path` now instead of taking a lease in a deleted file. Every lease
/// operation locks the file found at `path` and acts only if it still is, so
/// two holders can never work on two different files of one lease.
///
/// With `create` false a missing file is a free lease (`decide(None)`) and
/// nothing is created: renewing or releasing a lease nobody holds leaves no
/// file behind.
fn with_lease_file<T>(
    path: &Path,
    create: bool,
    mut decide: impl FnMut(Option<LeaseRecord>) -> (T, LeaseWrite),
) -> Result<T, StorageError> {
    let io_err = |e| StorageError::io(path, e);
    loop {
        if create && let Some(dir) = path.parent() {
            create_dirs(dir)?;
        }
        let opened =
            OpenOptions::new().read(true).write(true).create(create).truncate(false).mode(0o600).open(path);
        let mut file = match opened {
            Ok(file) => file,
            // Not creating: no file, no lease. Creating: a release removed
            // the directory entry between `create_dirs` and `open` (only the
            // file, never the directory, so this is just a retry).
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => {
                return Ok(decide(None).0);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(e)),
        };
        file.lock().map_err(io_err)?;
        if !is_current(&file, path).map_err(io_err)? {
            // Released (deleted) while we waited for the lock: try again on
            // the file at `path` now, if any.
            drop(file);
            continue;
        }
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io_err)?;
        // A torn record (crash while writing) counts as no lease.
        let current = serde_json::from_str::<LeaseRecord>(&text).ok();
        let (answer, write) = decide(current);
        match write {
            LeaseWrite::Keep => {}
            LeaseWrite::Record(record) => {
                let bytes = serde_json::to_vec(&record).map_err(StorageError::backend)?;
                file.set_len(0).map_err(io_err)?;
                file.rewind().map_err(io_err)?;
                file.write_all(&bytes).map_err(io_err)?;
            }
            // Deleted before the lock is dropped: whoever waits for this
            // file's lock sees that it is gone (above) and starts over.
            LeaseWrite::Remove => match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(e)),
            },
        }
        // Closing the file drops the lock.
        drop(file);
        return Ok(answer);
    }
}

#[async_trait]
impl Storage for FileStorage {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StorageError> {
        let path = self.path_of(key.as_str());
        self.blocking(move |_| match fs::read(&path) {
            Ok(v) => Ok(Some(v)),
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => Ok(None),
            Err(e) => Err(StorageError::io(path, e)),
        })
        .await
    }

    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StorageError> {
        let path = self.path_of(key.as_str());
        let value = value.to_vec();
        self.blocking(move |_| write_atomically(&path, &value)).await
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        let path = self.path_of(key.as_str());
        self.blocking(move |_| match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => Ok(()),
            Err(e) => Err(StorageError::io(path, e)),
        })
        .await
    }

    async fn list(&self, prefix: &Prefix) -> Result<Vec<Key>, StorageError> {
        let prefix = prefix.clone();
        self.blocking(move |this| {
            let path = this.path_of(prefix.as_str());
            let mut out = Vec::new();
            match fs::metadata(&path) {
                Ok(m) if m.is_file() => out.push(Key::new(prefix.as_str())?),
                Ok(_) => walk(&path, prefix.as_str(), &mut out)?,
                Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {}
                Err(e) => return Err(StorageError::io(path, e)),
            }
            out.sort();
            Ok(out)
        })
        .await
    }

    async fn stat(&self, key: &Key) -> Result<Option<KeyInfo>, StorageError> {
        let path = self.path_of(key.as_str());
        self.blocking(move |_| match fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(KeyInfo {
                size: m.len(),
                modified: m.modified().map_err(|e| StorageError::io(&path, e))?,
            })),
            Ok(_) => Ok(None),
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => Ok(None),
            Err(e) => Err(StorageError::io(path, e)),
        })
        .await
    }

    async fn try_acquire_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
        let path = self.lease_path(name);
        let holder = holder.to_owned();
        self.blocking(move |_| {
            with_lease_file(&path, true, |current| {
                let now = now_ms();
                let free = current.as_ref().is_none_or(|r| {
                    r.holder == holder
                        || r.expires_unix_ms <= now
                        || r.process.is_some_and(ProcessId::is_gone)
                });
                if free {
                    let record = LeaseRecord {
                        holder: holder.clone(),
                        expires_unix_ms: now + ttl.as_millis(),
                        process: ProcessId::current(),
                    };
                    (true, LeaseWrite::Record(record))
                } else {
                    (false, LeaseWrite::Keep)
                }
            })
        })
        .await
    }

    async fn renew_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
        let path = self.lease_path(name);
        let holder = holder.to_owned();
        self.blocking(move |_| {
            with_lease_file(&path, false, |current| match current {
                Some(r) if r.holder == holder => {
                    let record = LeaseRecord {
                        holder: holder.clone(),
                        expires_unix_ms: now_ms() + ttl.as_millis(),
                        process: ProcessId::current(),
                    };
                    (true, LeaseWrite::Record(record))
                }
                _ => (false, LeaseWrite::Keep),
            })
        })
        .await
    }

    async fn release_lease(&self, name: &Key, holder: &str) -> Result<(), StorageError> {
        let path = self.lease_path(name);
        let holder = holder.to_owned();
        self.blocking(move |_| {
            with_lease_file(&path, false, |current| match current {
                Some(r) if r.holder == holder => ((), LeaseWrite::Remove),
                _ => ((), LeaseWrite::Keep),
            })
        })
        .await
    }
}

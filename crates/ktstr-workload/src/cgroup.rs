//! cgroup v2 directories for one run: created under a root, removed (tasks
//! killed first) when the [`CgroupTree`] is dropped or explicitly removed.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ktstr_topology::format_cpu_list;

/// A cgroup file operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No cgroup2 mount in /proc/self/mounts.
    #[error("no cgroup2 filesystem is mounted")]
    NoCgroup2,
    /// An I/O step failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Path involved.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Tasks would not leave a cgroup before the deadline.
    #[error("cgroup {0} still has tasks after kill")]
    StillPopulated(PathBuf),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + use<> {
    let path = path.to_path_buf();
    move |source| CgroupError::Io { what, path, source }
}

/// Where cgroup2 is mounted (`/sys/fs/cgroup` on a pure v2 system,
/// `/sys/fs/cgroup/unified` on a hybrid one).
pub fn cgroup2_mount() -> Result<PathBuf, CgroupError> {
    let mounts = fs::read_to_string("/proc/self/mounts")
        .map_err(io("reading", Path::new("/proc/self/mounts")))?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_src, dir, kind) = (f.next()?, f.next()?, f.next()?);
            (kind == "cgroup2").then(|| PathBuf::from(dir))
        })
        .min_by_key(|p| p.as_os_str().len())
        .ok_or(CgroupError::NoCgroup2)
}

/// Which controllers the run got; missing ones are emulated or skipped by the
/// runner and recorded in the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Controllers {
    /// `cpuset` is enabled for the run's cgroups.
    pub cpuset: bool,
    /// `cpu` is enabled (so `cpu.weight` exists).
    pub cpu: bool,
}

/// The run's cgroup root and every cgroup made below it.
#[derive(Debug)]
pub struct CgroupTree {
    root: PathBuf,
    controllers: Controllers,
    removed: bool,
}

fn write_file(path: &Path, text: &str) -> Result<(), CgroupError> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io("opening", path))?;
    f.write_all(text.as_bytes()).map_err(io("writing", path))
}

/// Enable what it can of `cpu`/`cpuset` in `dir`'s subtree_control; each is
/// written alone so one refusal does not hide the other.
fn enable_controllers(dir: &Path) -> Controllers {
    let avail = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let has = |c: &str| avail.split_whitespace().any(|a| a == c);
    let ctl = dir.join("cgroup.subtree_control");
    let mut got = Controllers::default();
    if has("cpuset") {
        got.cpuset = write_file(&ctl, "+cpuset").is_ok();
    }
    if has("cpu") {
        got.cpu = write_file(&ctl, "+cpu").is_ok();
    }
    got
}

impl CgroupTree {
    /// Create `parent/name` (e.g. `/sys/fs/cgroup/ktstr-<pid>`) and enable
    /// `cpu`/`cpuset` for it and its children where the hierarchy allows.
    pub fn create(parent: &Path, name: &str) -> Result<Self, CgroupError> {
        let root = parent.join(name);
        // Controllers must be on in the parent for the root to have them.
        enable_controllers(parent);
        fs::create_dir(&root).map_err(io("creating", &root))?;
        let mut tree = Self {
            root,
            controllers: Controllers::default(),
            removed: false,
        };
        // The root lists a controller only if the parent enabled it, so what
        // the root can enable for its children is what the run gets.
        tree.controllers = enable_controllers(&tree.root);
        tracing::debug!(root = %tree.root.display(), controllers = ?tree.controllers, "cgroup root created");
        Ok(tree)
    }

    /// Root directory of the run.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Controllers available to the run's cgroups.
    pub fn controllers(&self) -> Controllers {
        self.controllers
    }

    /// Absolute path of cgroup `rel` (`a` or `a/b`).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Create cgroup `rel`; `has_children` enables controllers for its
    /// subtree (it must then hold no tasks itself).
    pub fn add(&self, rel: &str, has_children: bool) -> Result<PathBuf, CgroupError> {
        let p = self.path(rel);
        fs::create_dir(&p).map_err(io("creating", &p))?;
        if has_children && (self.controllers.cpu || self.controllers.cpuset) {
            enable_controllers(&p);
        }
        Ok(p)
    }

    /// Write `cpuset.cpus` (and `cpuset.mems` from the parent so tasks can be
    /// placed). No-op returning `false` when cpuset is unavailable.
    pub fn set_cpus(&self, rel: &str, cpus: &[u32]) -> Result<bool, CgroupError> {
        if !self.controllers.cpuset {
            return Ok(false);
        }
        let p = self.path(rel);
        write_file(&p.join("cpuset.cpus"), &format_cpu_list(cpus))?;
        Ok(true)
    }

    /// Write `cpu.weight`. No-op returning `false` when cpu is unavailable.
    pub fn set_weight(&self, rel: &str, weight: u32) -> Result<bool, CgroupError> {
        if !self.controllers.cpu {
            return Ok(false);
        }
        write_file(&self.path(rel).join("cpu.weight"), &weight.to_string())?;
        Ok(true)
    }

    /// Open `cgroup.procs` for writing: a forked worker writes "0" to it to
    /// move itself in before it starts working.
    pub fn procs_file(&self, rel: &str) -> Result<File, CgroupError> {
        let p = self.path(rel).join("cgroup.procs");
        OpenOptions::new()
            .write(true)
            .open(&p)
            .map_err(io("opening", &p))
    }

    /// Move process `pid` into cgroup `rel`.
    pub fn move_pid(&self, rel: &str, pid: u32) -> Result<(), CgroupError> {
        write_file(&self.path(rel).join("cgroup.procs"), &pid.to_string())
    }

    /// PIDs currently in cgroup `rel`.
    pub fn pids(&self, rel: &str) -> Result<Vec<u32>, CgroupError> {
        let p = self.path(rel).join("cgroup.procs");
        let text = fs::read_to_string(&p).map_err(io("reading", &p))?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// The cgroup v2 id of `rel` (the inode number of its directory).
    pub fn id(&self, rel: &str) -> u64 {
        fs::metadata(self.path(rel)).map(|m| m.ino()).unwrap_or(0)
    }

    /// Kill every task in `rel` and below, then remove the directories.
    pub fn remove(&self, rel: &str) -> Result<(), CgroupError> {
        remove_tree(&self.path(rel))
    }

    /// Remove everything, root included; reports the first failure.
    pub fn remove_all(mut self) -> Result<(), CgroupError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), CgroupError> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        // Walk the directory rather than a list of what we made: anything under
        // the run's root (by us or anyone) must go for the root to go.
        remove_tree(&self.root)
    }
}

/// Depth-first: children first, then `dir` itself.
fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    let mut first_err = None;
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir())
                && let Err(err) = remove_tree(&e.path())
            {
                first_err.get_or_insert(err);
            }
        }
    }
    if let Err(e) = kill_and_rmdir(dir) {
        first_err.get_or_insert(e);
    }
    first_err.map_or(Ok(()), Err)
}

impl Drop for CgroupTree {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::warn!(error = %e, "cgroup teardown incomplete");
        }
    }
}

/// `cgroup.kill` (or SIGKILL per pid on kernels without it), wait until the
/// cgroup is empty, then rmdir.
fn kill_and_rmdir(dir: &Path) -> Result<(), CgroupError> {
    if !dir.exists() {
        return Ok(());
    }
    let procs = dir.join("cgroup.procs");
    let pids = |p: &Path| -> Vec<i32> {
        fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    if !pids(&procs).is_empty() && write_file(&dir.join("cgroup.kill"), "1").is_err() {
        for pid in pids(&procs) {
            // SAFETY: kill(2) with a pid read from our own cgroup; no memory involved.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                if Instant::now() >= deadline {
                    return Err(if pids(&procs).is_empty() {
                        CgroupError::Io {
                            what: "removing",
                            path: dir.to_path_buf(),
                            source: e,
                        }
                    } else {
                        CgroupError::StillPopulated(dir.to_path_buf())
                    });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

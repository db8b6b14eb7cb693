//! The file tree of the guest's initramfs: host files copied with the
//! symbolic links on their paths, the shared libraries they load, and
//! generated files, written out as one cpio archive.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::cpio;

/// Maximum number of symbolic links followed for one path, as Linux's MAXSYMLINKS.
const MAX_SYMLINKS: u32 = 40;

/// One entry of the tree.
#[derive(Debug, Clone)]
enum Node {
    Directory {
        permissions: u32,
    },
    /// A regular file copied from the host when the archive is written.
    HostFile {
        source: PathBuf,
        permissions: u32,
        mtime: u32,
    },
    /// A file whose contents are generated.
    Contents {
        data: Vec<u8>,
        permissions: u32,
    },
    Symlink {
        target: PathBuf,
    },
    CharDevice {
        permissions: u32,
        major: u32,
        minor: u32,
    },
}

/// The guest's file tree, keyed by absolute path. Paths sort with their
/// parents first, which is the order the kernel needs to unpack them.
#[derive(Debug, Clone, Default)]
pub struct Rootfs {
    nodes: BTreeMap<PathBuf, Node>,
}

impl Rootfs {
    /// Adds the host file or directory at the absolute `path`, and each
    /// symbolic link on the way with what it points to, so that `path`
    /// resolves in the guest as it does on the host. A directory is added
    /// without its contents. Returns the path with every link resolved.
    pub fn add_host_path(&mut self, path: &Path) -> Result<PathBuf> {
        self.add_host_path_within(path, 0)
    }

    fn add_host_path_within(&mut self, path: &Path, links_followed: u32) -> Result<PathBuf> {
        if links_followed > MAX_SYMLINKS {
            bail!("too many levels of symbolic links at {}", path.display());
        }
        let path = normalize(path)?;
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            // Only "/" has no parent.
            return Ok(path);
        };
        let real_parent = self.add_host_path_within(parent, links_followed)?;
        let here = real_parent.join(name);
        let metadata = fs::symlink_metadata(&here).with_context(|| format!("cannot inspect {}", here.display()))?;
        let file_type = metadata.file_type();
        let permissions = metadata.permissions().mode() & 0o7777;

        if file_type.is_symlink() {
            let target = fs::read_link(&here).with_context(|| format!("cannot read the link {}", here.display()))?;
            let resolved = if target.is_absolute() {
                target.clone()
            } else {
                // real_parent contains no links, so `..` in the target can be resolved by text.
                real_parent.join(&target)
            };
            self.insert(here, Node::Symlink { target })?;
            return self.add_host_path_within(&resolved, links_followed + 1);
        }
        if file_type.is_dir() {
            self.insert(here.clone(), Node::Directory { permissions })?;
        } else if file_type.is_file() {
            let mtime = u32::try_from(metadata.mtime()).unwrap_or(0);
            self.insert(
                here.clone(),
                Node::HostFile {
                    source: here.clone(),
                    permissions,
                    mtime,
                },
            )?;
        } else {
            bail!(
                "{} is neither a file, a directory nor a symbolic link, so it cannot go into the guest",
                here.display()
            );
        }
        Ok(here)
    }

    /// Adds the host directory `dir` with everything below it, except the
    /// entries for which `skip` returns true (they are not descended into).
    pub fn add_host_tree(&mut self, dir: &Path, skip: &dyn Fn(&Path) -> bool) -> Result<()> {
        let real = self.add_host_path(dir)?;
        let mut pending = vec![real];
        while let Some(dir) = pending.pop() {
            for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
                let path = entry.with_context(|| format!("cannot list {}", dir.display()))?.path();
                if skip(&path) {
                    continue;
                }
                let metadata =
                    fs::symlink_metadata(&path).with_context(|| format!("cannot inspect {}", path.display()))?;
                self.add_host_path(&path)?;
                if metadata.is_dir() {
                    pending.push(path);
                }
            }
        }
        Ok(())
    }

    /// Adds a directory, and its missing parents with mode 0755.
    pub fn add_directory(&mut self, path: &Path, permissions: u32) -> Result<()> {
        self.add_parents(path)?;
        self.insert(path.to_path_buf(), Node::Directory { permissions })
    }

    /// Adds a generated file.
    pub fn add_contents(&mut self, path: &Path, data: Vec<u8>, permissions: u32) -> Result<()> {
        self.add_parents(path)?;
        self.insert(path.to_path_buf(), Node::Contents { data, permissions })
    }

    pub fn add_symlink(&mut self, path: &Path, target: &Path) -> Result<()> {
        self.add_parents(path)?;
        self.insert(
            path.to_path_buf(),
            Node::Symlink {
                target: target.to_path_buf(),
            },
        )
    }

    pub fn add_char_device(&mut self, path: &Path, permissions: u32, major: u32, minor: u32) -> Result<()> {
        self.add_parents(path)?;
        self.insert(
            path.to_path_buf(),
            Node::CharDevice {
                permissions,
                major,
                minor,
            },
        )
    }

    /// Returns whether the tree has an entry at `path`, not following links.
    pub fn contains(&self, path: &Path) -> bool {
        self.nodes.contains_key(path)
    }

    /// Adds the shared libraries and the dynamic loader of every ELF file
    /// copied from the host, as `ldd` lists them.
    pub fn add_libraries(&mut self) -> Result<()> {
        let sources: Vec<PathBuf> = self
            .nodes
            .values()
            .filter_map(|node| match node {
                Node::HostFile { source, .. } => Some(source.clone()),
                _ => None,
            })
            .collect();
        for source in sources {
            if !is_elf(&source)? {
                continue;
            }
            for library in shared_libraries(&source)? {
                self.add_host_path(&library)
                    .with_context(|| format!("library {} of {}", library.display(), source.display()))?;
            }
        }
        Ok(())
    }

    /// Writes the tree as an uncompressed newc archive and returns its size in bytes.
    pub fn write(&self, archive: &Path) -> Result<u64> {
        let file = File::create(archive).with_context(|| format!("cannot create {}", archive.display()))?;
        let mut writer = cpio::Writer::new(BufWriter::with_capacity(1 << 20, file));
        for (path, node) in &self.nodes {
            let Ok(relative) = path.strip_prefix("/") else {
                bail!("{} in the guest tree is not absolute", path.display());
            };
            let name = relative.as_os_str().as_bytes();
            if name.is_empty() {
                continue;
            }
            let result = match node {
                Node::Directory { permissions } => writer.directory(name, *permissions),
                Node::HostFile {
                    source,
                    permissions,
                    mtime,
                } => copy_file(&mut writer, name, source, *permissions, *mtime),
                Node::Contents { data, permissions } => {
                    writer.file(name, *permissions, 0, data.len() as u64, &mut data.as_slice())
                }
                Node::Symlink { target } => writer.symlink(name, target.as_os_str().as_bytes()),
                Node::CharDevice {
                    permissions,
                    major,
                    minor,
                } => writer.char_device(name, *permissions, *major, *minor),
            };
            result.with_context(|| format!("cannot write {} into {}", path.display(), archive.display()))?;
        }
        let mut out = writer
            .finish()
            .with_context(|| format!("cannot write {}", archive.display()))?;
        let file = out.get_mut();
        let size = file
            .metadata()
            .with_context(|| format!("cannot inspect {}", archive.display()))?
            .len();
        Ok(size)
    }

    /// Adds the missing parent directories of a generated entry. A parent that
    /// is a link or a file is an error, because the entry would not be reachable.
    fn add_parents(&mut self, path: &Path) -> Result<()> {
        let mut current = PathBuf::from("/");
        let Some(parent) = path.parent() else {
            return Ok(());
        };
        for component in parent.components().skip(1) {
            current.push(component);
            match self.nodes.get(&current) {
                None => {
                    self.nodes
                        .insert(current.clone(), Node::Directory { permissions: 0o755 });
                }
                Some(Node::Directory { .. }) => {}
                Some(_) => bail!(
                    "cannot add {} to the guest: {} is not a directory there",
                    path.display(),
                    current.display()
                ),
            }
        }
        Ok(())
    }

    /// Inserts `node` unless the same kind of entry is already at `path`.
    fn insert(&mut self, path: PathBuf, node: Node) -> Result<()> {
        match self.nodes.get(&path) {
            None => {
                self.nodes.insert(path, node);
                Ok(())
            }
            Some(existing) if std::mem::discriminant(existing) == std::mem::discriminant(&node) => Ok(()),
            Some(existing) => bail!(
                "conflicting entries for {} in the guest: {existing:?} and {node:?}",
                path.display()
            ),
        }
    }
}

fn copy_file(
    writer: &mut cpio::Writer<BufWriter<File>>,
    name: &[u8],
    source: &Path,
    permissions: u32,
    mtime: u32,
) -> io::Result<()> {
    let mut file = File::open(source)?;
    let size = file.metadata()?.len();
    writer.file(name, permissions, mtime, size, &mut file)
}

/// Returns `path` without `.` components and with `..` applied by text.
fn normalize(path: &Path) -> Result<PathBuf> {
    let mut normalized = PathBuf::new();
    for component in path.components() {
        match component {
            Component::RootDir => normalized.push("/"),
            Component::CurDir => {}
            Component::ParentDir => {
                normalized.pop();
            }
            Component::Normal(name) => normalized.push(name),
            Component::Prefix(_) => bail!("unexpected path prefix in {}", path.display()),
        }
    }
    if !normalized.is_absolute() {
        bail!("{} is not an absolute path", path.display());
    }
    Ok(normalized)
}

/// Returns whether `path` starts with the ELF magic number.
fn is_elf(path: &Path) -> Result<bool> {
    let mut magic = [0; 4];
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    match file.read_exact(&mut magic) {
        Ok(()) => Ok(magic == *b"\x7fELF"),
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Runs `ldd` on an ELF file and returns the paths it lists.
fn shared_libraries(elf: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(elf)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to start `ldd {}`: install libc-bin", elf.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // ldd fails on static executables and prints why.
    if stdout.contains("statically linked") || stderr.contains("not a dynamic executable") {
        return Ok(Vec::new());
    }
    if !output.status.success() {
        bail!("`ldd {}` failed ({}): {}", elf.display(), output.status, stderr.trim());
    }
    parse_ldd(&stdout).with_context(|| format!("in the output of `ldd {}`", elf.display()))
}

/// Returns the library paths in `ldd` output. Lines are `NAME => PATH (ADDRESS)`,
/// `PATH (ADDRESS)` for the dynamic loader, or `NAME (ADDRESS)` for the vDSO, which has no file.
fn parse_ldd(output: &str) -> Result<Vec<PathBuf>> {
    let mut libraries = Vec::new();
    for line in output.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let location = match line.split_once(" => ") {
            Some((name, rest)) => {
                if rest.starts_with("not found") {
                    bail!("library {name} not found: install the Debian package that provides it");
                }
                rest
            }
            None => line,
        };
        let path = location.split(" (").next().unwrap_or(location).trim();
        if path.starts_with('/') {
            libraries.push(PathBuf::from(path));
        }
    }
    Ok(libraries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_parsed() {
        let output = "\
\tlinux-vdso.so.1 (0x00007ffd3c9f5000)
\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f8c511f1000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f8c50fc5000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f8c512e4000)
";
        let libraries = parse_ldd(output).unwrap();
        assert_eq!(
            libraries,
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libm.so.6"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn ldd_missing_library_is_error() {
        let output = "\tlibffi.so.8 => not found\n";
        let error = parse_ldd(output).unwrap_err().to_string();
        assert!(error.contains("libffi.so.8"), "{error}");
    }

    #[test]
    fn normalize_resolves_dots() {
        assert_eq!(
            normalize(Path::new("/usr/lib/../bin/./python3")).unwrap(),
            Path::new("/usr/bin/python3")
        );
        assert_eq!(normalize(Path::new("/..")).unwrap(), Path::new("/"));
        assert!(normalize(Path::new("usr/bin")).is_err());
    }

    #[test]
    fn generated_entries_get_parents() {
        let mut rootfs = Rootfs::default();
        rootfs
            .add_contents(Path::new("/etc/listns-vm/tests"), b"x".to_vec(), 0o644)
            .unwrap();
        assert!(rootfs.contains(Path::new("/etc")));
        assert!(rootfs.contains(Path::new("/etc/listns-vm")));
        let parents: Vec<&PathBuf> = rootfs.nodes.keys().collect();
        assert_eq!(parents, ["/etc", "/etc/listns-vm", "/etc/listns-vm/tests"]);
    }

    #[test]
    fn entry_below_link_rejected() {
        let mut rootfs = Rootfs::default();
        rootfs.add_symlink(Path::new("/lib"), Path::new("usr/lib")).unwrap();
        assert!(rootfs.add_contents(Path::new("/lib/x"), Vec::new(), 0o644).is_err());
    }

    #[test]
    fn host_links_followed_and_kept() {
        let dir = std::env::temp_dir().join(format!("xtask-vm-rootfs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("usr/bin")).unwrap();
        fs::write(dir.join("usr/bin/tool3.11"), b"#!/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("usr/bin", dir.join("bin")).unwrap();
        std::os::unix::fs::symlink("tool3.11", dir.join("usr/bin/tool3")).unwrap();

        let mut rootfs = Rootfs::default();
        let real = rootfs.add_host_path(&dir.join("bin/tool3"));
        fs::remove_dir_all(&dir).unwrap();

        assert_eq!(real.unwrap(), dir.join("usr/bin/tool3.11"));
        assert!(matches!(rootfs.nodes.get(&dir.join("bin")), Some(Node::Symlink { .. })));
        assert!(matches!(
            rootfs.nodes.get(&dir.join("usr/bin/tool3")),
            Some(Node::Symlink { .. })
        ));
        assert!(matches!(
            rootfs.nodes.get(&dir.join("usr/bin/tool3.11")),
            Some(Node::HostFile { .. })
        ));
        assert!(matches!(
            rootfs.nodes.get(&dir.join("usr/bin")),
            Some(Node::Directory { .. })
        ));
    }
}

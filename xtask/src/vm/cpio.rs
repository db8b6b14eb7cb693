//! A writer for the cpio "newc" format (magic `070701`), the format that the
//! kernel unpacks from an initramfs (`Documentation/driver-api/early-userspace/buffer-format.rst`).
//!
//! Each entry is a 110-byte ASCII header of 13 fields in 8 hexadecimal digits,
//! the NUL-terminated path, padding to a multiple of 4 bytes, then the data,
//! again padded to 4 bytes. The archive ends with an entry named `TRAILER!!!`.
//! Paths are written relative to the archive root, without a leading `/`.

use std::io::{self, Read, Write};

const MAGIC: &[u8; 6] = b"070701";
const TRAILER: &[u8] = b"TRAILER!!!";

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// Writes the entries of one newc archive to `out`, each with its own inode number.
pub struct Writer<W: Write> {
    out: W,
    /// Bytes written so far, for the padding after names and data.
    offset: u64,
    next_inode: u32,
}

/// The header fields that differ between entries.
struct Header<'a> {
    path: &'a [u8],
    mode: u32,
    nlink: u32,
    mtime: u32,
    size: u32,
    rdev_major: u32,
    rdev_minor: u32,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Writer<W> {
        Writer {
            out,
            offset: 0,
            // The kernel treats entries with equal inode numbers and nlink > 1
            // as hard links, so every entry gets its own number, starting at 1.
            next_inode: 1,
        }
    }

    /// Writes a directory entry. `permissions` are the low 12 bits of the mode.
    pub fn directory(&mut self, path: &[u8], permissions: u32) -> io::Result<()> {
        self.header(&Header {
            path,
            mode: S_IFDIR | permissions,
            nlink: 2,
            mtime: 0,
            size: 0,
            rdev_major: 0,
            rdev_minor: 0,
        })
    }

    /// Writes a regular file of `size` bytes read from `data`, which must yield exactly that many.
    pub fn file(
        &mut self,
        path: &[u8],
        permissions: u32,
        mtime: u32,
        size: u64,
        data: &mut impl Read,
    ) -> io::Result<()> {
        let size32 = u32::try_from(size).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is {size} bytes, but newc records sizes in 32 bits",
                    String::from_utf8_lossy(path)
                ),
            )
        })?;
        self.header(&Header {
            path,
            mode: S_IFREG | permissions,
            nlink: 1,
            mtime,
            size: size32,
            rdev_major: 0,
            rdev_minor: 0,
        })?;

        let copied = io::copy(&mut data.take(size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} yielded {copied} of {size} bytes (did it change while being archived?)",
                    String::from_utf8_lossy(path)
                ),
            ));
        }
        self.offset += size;
        self.pad()
    }

    /// Writes a symbolic link whose target is stored as the entry's data, without a NUL.
    pub fn symlink(&mut self, path: &[u8], target: &[u8]) -> io::Result<()> {
        let size = u32::try_from(target.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "symbolic link target too long"))?;
        self.header(&Header {
            path,
            mode: S_IFLNK | 0o777,
            nlink: 1,
            mtime: 0,
            size,
            rdev_major: 0,
            rdev_minor: 0,
        })?;
        self.write(target)?;
        self.pad()
    }

    /// Writes a character device node with the device number `major:minor`.
    pub fn char_device(&mut self, path: &[u8], permissions: u32, major: u32, minor: u32) -> io::Result<()> {
        self.header(&Header {
            path,
            mode: S_IFCHR | permissions,
            nlink: 1,
            mtime: 0,
            size: 0,
            rdev_major: major,
            rdev_minor: minor,
        })
    }

    /// Writes the trailer entry and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        // The trailer has inode 0, mode 0 and nlink 1, as GNU cpio writes it.
        self.next_inode = 0;
        self.header(&Header {
            path: TRAILER,
            mode: 0,
            nlink: 1,
            mtime: 0,
            size: 0,
            rdev_major: 0,
            rdev_minor: 0,
        })?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn header(&mut self, header: &Header) -> io::Result<()> {
        if header.path.is_empty() || header.path.starts_with(b"/") || header.path.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "invalid cpio path {:?}: it must be relative, non-empty and without NUL bytes",
                    String::from_utf8_lossy(header.path)
                ),
            ));
        }
        let inode = self.next_inode;
        self.next_inode = self.next_inode.wrapping_add(1);
        // The name size counts the terminating NUL.
        let name_size = u32::try_from(header.path.len() + 1)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "cpio path too long"))?;

        let fields = [
            inode,
            header.mode,
            0, // uid: root
            0, // gid: root
            header.nlink,
            header.mtime,
            header.size,
            0, // major number of the device that contains the file
            0, // minor number of the device that contains the file
            header.rdev_major,
            header.rdev_minor,
            name_size,
            0, // checksum, used only by the "070702" format
        ];
        let mut text = Vec::with_capacity(110);
        text.extend_from_slice(MAGIC);
        for field in fields {
            write!(text, "{field:08x}")?;
        }
        self.write(&text)?;
        self.write(header.path)?;
        self.write(&[0])?;
        self.pad()
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Pads the output with NUL bytes to the next multiple of 4.
    fn pad(&mut self) -> io::Result<()> {
        let padding = (4 - self.offset % 4) % 4;
        self.write(&[0; 3][..padding as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns the 13 header fields of the entry at `offset` and the offset of its name.
    fn fields_at(archive: &[u8], offset: usize) -> (Vec<u32>, usize) {
        assert_eq!(&archive[offset..offset + 6], MAGIC, "magic at offset {offset}");
        let fields = (0..13)
            .map(|i| {
                let start = offset + 6 + i * 8;
                let text = std::str::from_utf8(&archive[start..start + 8]).expect("ASCII field");
                u32::from_str_radix(text, 16).expect("hexadecimal field")
            })
            .collect();
        (fields, offset + 110)
    }

    fn aligned(offset: usize) -> usize {
        offset.div_ceil(4) * 4
    }

    #[test]
    fn file_entry_layout() {
        let mut writer = Writer::new(Vec::new());
        writer
            .file(b"usr/bin/hello", 0o755, 1_700_000_000, 5, &mut &b"hello"[..])
            .unwrap();
        let archive = writer.finish().unwrap();

        let (fields, name_offset) = fields_at(&archive, 0);
        assert_eq!(fields[0], 1, "inode");
        assert_eq!(fields[1], S_IFREG | 0o755, "mode");
        assert_eq!(fields[4], 1, "nlink");
        assert_eq!(fields[5], 1_700_000_000, "mtime");
        assert_eq!(fields[6], 5, "file size");
        assert_eq!(fields[11], 14, "name size with NUL");
        assert_eq!(&archive[name_offset..name_offset + 14], b"usr/bin/hello\0");

        // 110 + 14 = 124 is already aligned, so the data follows at once.
        let data_offset = aligned(name_offset + 14);
        assert_eq!(data_offset, 124);
        assert_eq!(&archive[data_offset..data_offset + 5], b"hello");
        let trailer_offset = aligned(data_offset + 5);
        assert_eq!(&archive[data_offset + 5..trailer_offset], &[0, 0, 0], "data padding");

        let (trailer, trailer_name) = fields_at(&archive, trailer_offset);
        assert_eq!(trailer[0], 0, "trailer inode");
        assert_eq!(trailer[4], 1, "trailer nlink");
        assert_eq!(trailer[11], 11, "trailer name size");
        assert_eq!(&archive[trailer_name..trailer_name + 11], b"TRAILER!!!\0");
        assert_eq!(archive.len() % 4, 0, "archive length is a multiple of 4");
    }

    #[test]
    fn name_padding_and_inodes() {
        let mut writer = Writer::new(Vec::new());
        writer.directory(b"etc", 0o755).unwrap();
        writer.symlink(b"bin", b"usr/bin").unwrap();
        writer.char_device(b"dev/console", 0o600, 5, 1).unwrap();
        let archive = writer.finish().unwrap();

        let (directory, name) = fields_at(&archive, 0);
        assert_eq!(directory[1], S_IFDIR | 0o755);
        assert_eq!(directory[4], 2, "directory nlink");
        // 110 + "etc\0" = 114, padded to 116.
        let next = aligned(name + 4);
        assert_eq!(next, 116);
        assert_eq!(&archive[name + 4..next], &[0, 0]);

        let (link, name) = fields_at(&archive, next);
        assert_eq!(link[0], 2, "second inode");
        assert_eq!(link[1], S_IFLNK | 0o777);
        assert_eq!(link[6], 7, "target length without NUL");
        let target = aligned(name + 4);
        assert_eq!(&archive[target..target + 7], b"usr/bin");

        let (device, _) = fields_at(&archive, aligned(target + 7));
        assert_eq!(device[0], 3, "third inode");
        assert_eq!(device[1], S_IFCHR | 0o600);
        assert_eq!((device[9], device[10]), (5, 1), "rdev major and minor");
        assert_eq!(device[6], 0, "device size");
    }

    #[test]
    fn absolute_or_empty_path_rejected() {
        let mut writer = Writer::new(Vec::new());
        assert!(writer.directory(b"/etc", 0o755).is_err());
        assert!(writer.directory(b"", 0o755).is_err());
        assert!(writer.directory(b"a\0b", 0o755).is_err());
    }

    #[test]
    fn short_file_data_rejected() {
        let mut writer = Writer::new(Vec::new());
        let error = writer.file(b"short", 0o644, 0, 10, &mut &b"abc"[..]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }
}

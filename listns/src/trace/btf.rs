//! A small reader for the kernel's BTF (`/sys/kernel/btf/vmlinux`): struct
//! and union members with their byte offsets, and type sizes. That is all
//! `offsets.rs` needs.
//!
//! The format is described in the kernel's Documentation/bpf/btf.rst: a
//! header, then a type section of variable-length records (type ids count
//! from 1 in file order), then a string section.
//!
//! It replaces the `btf-rs` crate for two reasons. That crate is
//! LGPL-2.1-or-later, which puts relinking obligations on anyone who ships a
//! statically linked listns (MIT OR Apache-2.0). And listns needs only struct
//! members, which this reader indexes by name in one pass: reading and
//! indexing the 5.5 MB vmlinux BTF of Linux 6.18 took 12 to 20 ms in a
//! release build on a 2-core VM.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;

const BTF_MAGIC: u16 = 0xeb9f;

// BTF_KIND_* values from include/uapi/linux/btf.h.
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// Size of `struct btf_type`, the part every type record starts with.
const TYPE_HEADER_LEN: usize = 12;

/// An error while reading BTF data.
#[derive(Debug)]
pub struct BtfError(String);

impl fmt::Display for BtfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BtfError {}

fn invalid(message: String) -> BtfError {
    BtfError(message)
}

/// The kind of a BTF type, as far as this reader distinguishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Pointer,
    Array,
    Struct,
    Union,
    /// Any other kind (enums, functions, typedefs before resolving, ...).
    Other(u32),
}

/// One parsed type record.
#[derive(Debug, Clone, Copy)]
struct TypeRecord {
    kind: u32,
    vlen: u16,
    kind_flag: bool,
    /// `size` for ints, structs, unions, enums and floats; `type` for
    /// pointers, typedefs, qualifiers and other references.
    size_or_type: u32,
    /// Offset of the kind-specific data after the header, in the type section.
    extra: usize,
}

/// A member of a struct or union.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Byte offset from the start of the outermost struct that was searched.
    pub offset: u32,
    /// Type id of the member.
    pub type_id: u32,
}

/// Parsed BTF data with an index of named structs and unions.
pub struct Btf {
    types_section: Vec<u8>,
    strings: Vec<u8>,
    /// Indexed by type id; entry 0 stands for `void`.
    types: Vec<TypeRecord>,
    /// Named structs and unions with at least one member. The kernel's BTF
    /// is deduplicated, so a name maps to one definition.
    composites: HashMap<String, u32>,
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

impl Btf {
    /// Reads and parses a BTF file such as `/sys/kernel/btf/vmlinux`.
    pub fn from_file(path: &Path) -> Result<Btf, BtfError> {
        let data = std::fs::read(path).map_err(|err| {
            invalid(format!(
                "cannot read kernel BTF from {}: {err}; the kernel needs CONFIG_DEBUG_INFO_BTF=y",
                path.display()
            ))
        })?;
        Btf::parse_owned(data).map_err(|err| invalid(format!("{}: {err}", path.display())))
    }

    /// Parses raw BTF data like [`Btf::parse`], reusing its buffer for the
    /// type section instead of copying it.
    pub fn parse_owned(mut data: Vec<u8>) -> Result<Btf, BtfError> {
        let (types, strings) = Btf::sections(&data)?;
        let strings = data[strings].to_vec();
        data.truncate(types.end);
        data.drain(..types.start);
        Btf::index(data, strings)
    }

    /// Parses raw BTF data (little-endian, as on x86_64 and arm64).
    pub fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        let (types, strings) = Btf::sections(data)?;
        Btf::index(data[types].to_vec(), data[strings].to_vec())
    }

    /// Checks the header and returns the byte ranges of the type and string
    /// sections in `data`.
    fn sections(data: &[u8]) -> Result<(Range<usize>, Range<usize>), BtfError> {
        let magic = u16_at(data, 0).ok_or_else(|| invalid("BTF data is shorter than its header".into()))?;
        if magic != BTF_MAGIC {
            return Err(invalid(format!(
                "invalid BTF magic {magic:#06x}, expected {BTF_MAGIC:#06x} (little-endian BTF)"
            )));
        }
        let header = |at: usize| u32_at(data, at).ok_or_else(|| invalid("BTF data is shorter than its header".into()));
        let header_len = header(4)? as usize;
        let type_off = header(8)? as usize;
        let type_len = header(12)? as usize;
        let str_off = header(16)? as usize;
        let str_len = header(20)? as usize;
        let section = |off: usize, len: usize, name: &str| {
            let start = header_len.checked_add(off);
            let end = start.and_then(|start| start.checked_add(len));
            match (start, end) {
                (Some(start), Some(end)) if end <= data.len() => Ok(start..end),
                _ => Err(invalid(format!(
                    "BTF {name} section ({len} bytes at {off}) lies outside the {} bytes of data",
                    data.len()
                ))),
            }
        };
        Ok((
            section(type_off, type_len, "type")?,
            section(str_off, str_len, "string")?,
        ))
    }

    fn index(types_section: Vec<u8>, strings: Vec<u8>) -> Result<Btf, BtfError> {
        let mut btf = Btf {
            types_section,
            strings,
            types: Vec::new(),
            composites: HashMap::new(),
        };
        btf.index_types()?;
        Ok(btf)
    }

    fn index_types(&mut self) -> Result<(), BtfError> {
        let section = &self.types_section;
        let void = TypeRecord {
            kind: 0,
            vlen: 0,
            kind_flag: false,
            size_or_type: 0,
            extra: 0,
        };
        let mut types = vec![void];
        let mut composites = HashMap::new();
        let mut at = 0;
        while at < section.len() {
            let id = types.len();
            let truncated = || invalid(format!("BTF type {id} is truncated"));
            let name_off = u32_at(section, at).ok_or_else(truncated)?;
            let info = u32_at(section, at + 4).ok_or_else(truncated)?;
            let size_or_type = u32_at(section, at + 8).ok_or_else(truncated)?;
            let vlen = (info & 0xffff) as u16;
            let kind = (info >> 24) & 0x1f;
            let extra = at + TYPE_HEADER_LEN;
            let extra_len = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen as usize,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen as usize,
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_FUNC
                | KIND_FLOAT | KIND_TYPE_TAG => 0,
                other => {
                    return Err(invalid(format!(
                        "BTF type {id} has kind {other}, which this reader does not know; \
                         a newer kernel may have added it"
                    )));
                }
            };
            let record = TypeRecord {
                kind,
                vlen,
                kind_flag: info >> 31 != 0,
                size_or_type,
                extra,
            };
            if matches!(kind, KIND_STRUCT | KIND_UNION) && vlen > 0 && name_off != 0 {
                let name = self.string(name_off)?;
                composites.entry(name.to_owned()).or_insert(id as u32);
            }
            types.push(record);
            at = extra + extra_len;
        }
        if at != section.len() {
            return Err(invalid("BTF type section ends inside a type record".into()));
        }
        self.types = types;
        self.composites = composites;
        Ok(())
    }

    fn string(&self, offset: u32) -> Result<&str, BtfError> {
        let start = offset as usize;
        let bytes = self
            .strings
            .get(start..)
            .ok_or_else(|| invalid(format!("BTF string offset {offset} is out of range")))?;
        let end = bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| invalid(format!("BTF string at {offset} is not NUL-terminated")))?;
        std::str::from_utf8(&bytes[..end]).map_err(|_| invalid(format!("BTF string at {offset} is not UTF-8")))
    }

    fn record(&self, id: u32) -> Result<&TypeRecord, BtfError> {
        self.types
            .get(id as usize)
            .ok_or_else(|| invalid(format!("BTF type id {id} is out of range")))
    }

    /// Returns the id of the struct or union with this name.
    pub fn find_composite(&self, name: &str) -> Option<u32> {
        self.composites.get(name).copied()
    }

    /// Follows typedefs, `const`, `volatile`, `restrict` and type tags to the
    /// underlying type.
    pub fn resolve(&self, mut id: u32) -> Result<u32, BtfError> {
        // Chains are short; the bound only stops a malformed cycle.
        for _ in 0..64 {
            let record = self.record(id)?;
            match record.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = record.size_or_type;
                }
                _ => return Ok(id),
            }
        }
        Err(invalid(format!("BTF type {id} has a reference cycle")))
    }

    /// Returns the kind of a type after [`Btf::resolve`].
    pub fn kind(&self, id: u32) -> Result<Kind, BtfError> {
        let record = self.record(self.resolve(id)?)?;
        Ok(match record.kind {
            KIND_INT => Kind::Int,
            KIND_PTR => Kind::Pointer,
            KIND_ARRAY => Kind::Array,
            KIND_STRUCT => Kind::Struct,
            KIND_UNION => Kind::Union,
            other => Kind::Other(other),
        })
    }

    /// Returns the size in bytes of a type. Pointers are 8 bytes: this
    /// reader is used only for 64-bit kernels.
    pub fn size_of(&self, id: u32) -> Result<u32, BtfError> {
        let id = self.resolve(id)?;
        let record = self.record(id)?;
        match record.kind {
            KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 | KIND_FLOAT => Ok(record.size_or_type),
            KIND_PTR => Ok(8),
            KIND_ARRAY => {
                let element = u32_at(&self.types_section, record.extra)
                    .ok_or_else(|| invalid(format!("BTF array {id} is truncated")))?;
                let count = u32_at(&self.types_section, record.extra + 8)
                    .ok_or_else(|| invalid(format!("BTF array {id} is truncated")))?;
                Ok(self.size_of(element)?.saturating_mul(count))
            }
            other => Err(invalid(format!("BTF type {id} of kind {other} has no size"))),
        }
    }

    /// Returns the element count of an array type.
    pub fn array_len(&self, id: u32) -> Result<u32, BtfError> {
        let id = self.resolve(id)?;
        let record = self.record(id)?;
        if record.kind != KIND_ARRAY {
            return Err(invalid(format!("BTF type {id} is not an array")));
        }
        u32_at(&self.types_section, record.extra + 8).ok_or_else(|| invalid(format!("BTF array {id} is truncated")))
    }

    /// Finds a named member of a struct or union, also inside anonymous
    /// struct and union members (as C allows). Returns `None` when the type
    /// has no such member.
    pub fn member(&self, composite: u32, name: &str) -> Result<Option<Member>, BtfError> {
        let id = self.resolve(composite)?;
        let record = *self.record(id)?;
        if !matches!(record.kind, KIND_STRUCT | KIND_UNION) {
            return Err(invalid(format!("BTF type {id} is not a struct or union")));
        }
        for index in 0..record.vlen as usize {
            let at = record.extra + 12 * index;
            let truncated = || invalid(format!("BTF struct {id} is truncated"));
            let name_off = u32_at(&self.types_section, at).ok_or_else(truncated)?;
            let type_id = u32_at(&self.types_section, at + 4).ok_or_else(truncated)?;
            let raw_offset = u32_at(&self.types_section, at + 8).ok_or_else(truncated)?;
            // With kind_flag set, the top 8 bits hold a bitfield size.
            let bit_offset = if record.kind_flag {
                raw_offset & 0x00ff_ffff
            } else {
                raw_offset
            };

            if name_off == 0 {
                // An anonymous struct or union: its members belong to this one.
                if matches!(self.kind(type_id)?, Kind::Struct | Kind::Union)
                    && let Some(inner) = self.member(type_id, name)?
                {
                    return Ok(Some(Member {
                        offset: bit_offset / 8 + inner.offset,
                        type_id: inner.type_id,
                    }));
                }
                continue;
            }
            if self.string(name_off)? == name {
                if bit_offset % 8 != 0 {
                    return Err(invalid(format!(
                        "member {name} of BTF type {id} is a bitfield at bit {bit_offset}"
                    )));
                }
                return Ok(Some(Member {
                    offset: bit_offset / 8,
                    type_id,
                }));
            }
        }
        Ok(None)
    }

    /// Returns the number of types, including `void`.
    pub fn type_count(&self) -> usize {
        self.types.len()
    }

    /// Returns the id of the function (`BTF_KIND_FUNC`) with this name.
    pub fn func_id(&self, name: &str) -> Option<u32> {
        self.types.iter().enumerate().find_map(|(id, record)| {
            let name_off = u32_at(&self.types_section, record.extra.checked_sub(TYPE_HEADER_LEN)?)?;
            (record.kind == KIND_FUNC && self.string(name_off).ok()? == name).then_some(id as u32)
        })
    }

    /// Returns BTF data in which the functions `names` keep their type ids
    /// and names, and every type before the last of them is a nameless
    /// `void *`. A loader that only looks up the ids of these functions by
    /// name gets the kernel's ids from a copy of a few hundred kilobytes.
    pub fn function_ids_only(&self, names: &[&str]) -> Result<Vec<u8>, BtfError> {
        let mut functions = Vec::with_capacity(names.len());
        for &name in names {
            let id = self
                .func_id(name)
                .ok_or_else(|| invalid(format!("function {name} is missing from the kernel's BTF")))?;
            functions.push((id, name));
        }
        let last_id = functions.iter().map(|&(id, _)| id).max().unwrap_or(0);

        let mut strings = vec![0u8];
        let mut types = Vec::with_capacity(last_id as usize * TYPE_HEADER_LEN);
        for id in 1..=last_id {
            let (name_off, info) = match functions.iter().find(|&&(function, _)| function == id) {
                Some(&(_, name)) => {
                    let offset = strings.len() as u32;
                    strings.extend_from_slice(name.as_bytes());
                    strings.push(0);
                    (offset, KIND_FUNC << 24)
                }
                None => (0, KIND_PTR << 24),
            };
            // A function's type would be its prototype; a pointer's 0 is void.
            for word in [name_off, info, 0] {
                types.extend_from_slice(&word.to_le_bytes());
            }
        }

        let mut data = Vec::with_capacity(24 + types.len() + strings.len());
        data.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        data.extend_from_slice(&[1, 0]); // version 1, no flags
        for word in [24, 0, types.len(), types.len(), strings.len()] {
            data.extend_from_slice(&(word as u32).to_le_bytes());
        }
        data.extend_from_slice(&types);
        data.extend_from_slice(&strings);
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds BTF data with these strings and raw type records.
    fn build(strings: &[&str], types: &[u32]) -> Vec<u8> {
        let mut string_section = vec![0u8];
        for s in strings {
            string_section.extend_from_slice(s.as_bytes());
            string_section.push(0);
        }
        let type_section: Vec<u8> = types.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut data = Vec::new();
        data.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        data.push(1); // version
        data.push(0); // flags
        for word in [
            24u32,
            0,
            type_section.len() as u32,
            type_section.len() as u32,
            string_section.len() as u32,
        ] {
            data.extend_from_slice(&word.to_le_bytes());
        }
        data.extend_from_slice(&type_section);
        data.extend_from_slice(&string_section);
        data
    }

    fn info(kind: u32, vlen: u32, kind_flag: bool) -> u32 {
        (kind << 24) | vlen | if kind_flag { 1 << 31 } else { 0 }
    }

    #[test]
    #[rustfmt::skip]
    fn members_inside_anonymous_union() {
        // String offsets: 1 "int", 5 "inner_a", 13 "outer", 19 "x", 21 "ptr".
        let data = build(
            &["int", "inner_a", "outer", "x", "ptr"],
            &[
                // 1: int, 4 bytes
                1, info(KIND_INT, 0, false), 4, 32,
                // 2: anonymous union { int inner_a; }
                0, info(KIND_UNION, 1, false), 4,
                5, 1, 0,
                // 3: pointer to int
                0, info(KIND_PTR, 0, false), 1,
                // 4: struct outer { int x; <anon union> at byte 8; int *ptr at byte 16 }
                13, info(KIND_STRUCT, 3, false), 24,
                19, 1, 0,
                0, 2, 64,
                21, 3, 128,
            ],
        );
        let btf = Btf::parse(&data).unwrap();
        let outer = btf.find_composite("outer").expect("outer is indexed");
        let inner = btf.member(outer, "inner_a").unwrap().expect("inner_a is found");
        assert_eq!(inner.offset, 8);
        assert_eq!(btf.size_of(inner.type_id).unwrap(), 4);
        let ptr = btf.member(outer, "ptr").unwrap().expect("ptr is found");
        assert_eq!(ptr.offset, 16);
        assert_eq!(btf.kind(ptr.type_id).unwrap(), Kind::Pointer);
        assert_eq!(btf.member(outer, "missing").unwrap(), None);
    }

    #[test]
    #[rustfmt::skip]
    fn function_ids_survive_the_short_copy() {
        // String offsets: 1 "int", 5 "first", 11 "second".
        let data = build(
            &["int", "first", "second"],
            &[
                // 1: int; 2: func_proto returning int; 3: func first; 4: func second; 5: int again
                1, info(KIND_INT, 0, false), 4, 32,
                0, info(KIND_FUNC_PROTO, 0, false), 1,
                5, info(KIND_FUNC, 0, false), 2,
                11, info(KIND_FUNC, 0, false), 2,
                1, info(KIND_INT, 0, false), 4, 32,
            ],
        );
        let btf = Btf::parse(&data).unwrap();
        assert_eq!(btf.func_id("first"), Some(3));
        assert_eq!(btf.func_id("second"), Some(4));
        assert_eq!(btf.func_id("int"), None, "int is no function");

        let short = Btf::parse(&btf.function_ids_only(&["second", "first"]).unwrap()).unwrap();
        assert_eq!(short.type_count(), 5, "void and types 1 to 4");
        assert_eq!(short.func_id("first"), Some(3));
        assert_eq!(short.func_id("second"), Some(4));
        assert_eq!(short.kind(1).unwrap(), Kind::Pointer);
        assert!(btf.function_ids_only(&["missing"]).is_err());
    }

    #[test]
    fn unknown_kind_is_rejected() {
        let data = build(&[], &[0, info(31, 0, false), 0]);
        let err = Btf::parse(&data).err().expect("kind 31 is unknown");
        assert!(err.to_string().contains("kind 31"), "{err}");
    }

    #[test]
    fn truncated_header_is_rejected() {
        assert!(Btf::parse(&[0x9f, 0xeb, 1]).is_err());
    }

    #[test]
    fn running_kernel_has_task_struct() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        if !path.exists() {
            eprintln!("skipped: {} is missing", path.display());
            return;
        }
        let btf = Btf::from_file(path).unwrap();
        let task = btf.find_composite("task_struct").expect("task_struct in vmlinux BTF");
        let pid = btf.member(task, "pid").unwrap().expect("task_struct.pid");
        assert_eq!(btf.size_of(pid.type_id).unwrap(), 4);
    }
}

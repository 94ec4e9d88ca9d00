//! Struct layouts from the vmlinux's `.BTF`, through `btfparse`.

use btfparse::{Offset, Readable, TypeInformation, TypeVariant};
use object::{Object, ObjectSection};

use crate::LoadError;

/// Where a member lives in its struct, and how many bytes it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Field {
    pub offset: usize,
    pub size: usize,
}

impl Field {
    /// One past its last byte.
    pub fn end(&self) -> usize {
        self.offset + self.size
    }
}

/// The parsed type information of one kernel.
pub struct Btf {
    info: TypeInformation,
}

struct Bytes<'a>(&'a [u8]);

impl Readable for Bytes<'_> {
    fn read(&self, offset: u64, buffer: &mut [u8]) -> btfparse::Result<()> {
        let src = usize::try_from(offset)
            .ok()
            .and_then(|start| self.0.get(start..start.checked_add(buffer.len())?));
        match src {
            Some(src) => {
                buffer.copy_from_slice(src);
                Ok(())
            }
            None => Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()),
        }
    }
}

impl Btf {
    /// Parses raw BTF (the `.BTF` section, or `/sys/kernel/btf/vmlinux`).
    pub fn parse(bytes: &[u8]) -> Result<Self, LoadError> {
        let info = TypeInformation::new(&Bytes(bytes)).map_err(LoadError::Btf)?;
        Ok(Btf { info })
    }

    /// Parses the `.BTF` section of an ELF vmlinux.
    pub fn from_vmlinux(elf: &object::File<'_>) -> Result<Self, LoadError> {
        let section = elf.section_by_name(".BTF").ok_or(LoadError::NoBtf)?;
        Self::parse(section.data()?)
    }

    /// The id of the complete `struct name` (not a forward declaration,
    /// nor another kind of type with the same name).
    pub fn struct_id(&self, name: &'static str) -> Result<u32, LoadError> {
        self.info
            .get()
            .iter()
            .find_map(|(id, ty)| match ty {
                TypeVariant::Struct(s) if s.name().as_deref() == Some(name) && *s.size() > 0 => {
                    Some(*id)
                }
                _ => None,
            })
            .ok_or(LoadError::MissingType {
                kind: "struct",
                name,
            })
    }

    /// Offset and size of `path` (dotted, through nested and anonymous
    /// members) inside the struct `ty`.
    pub fn field(&self, ty: &'static str, path: &'static str) -> Result<Field, LoadError> {
        let id = self.struct_id(ty)?;
        let missing = || LoadError::MissingMember { ty, member: path };
        let (member_ty, offset) = self.info.offset_of(id, path).map_err(|_| missing())?;
        let offset = match offset {
            Offset::ByteOffset(o) => o as usize,
            Offset::BitOffsetAndSize(..) => return Err(LoadError::Bitfield { ty, member: path }),
        };
        let size = self.info.size_of(member_ty).map_err(|_| missing())?;
        Ok(Field { offset, size })
    }

    /// Like [`Btf::field`], for a member read as an integer or pointer.
    pub fn int_field(&self, ty: &'static str, path: &'static str) -> Result<Field, LoadError> {
        let f = self.field(ty, path)?;
        match f.size {
            1 | 2 | 4 | 8 => Ok(f),
            size => Err(LoadError::UnreadableMember {
                ty,
                member: path,
                size,
            }),
        }
    }

    /// The values of `enum name`, by number.
    pub fn enum_values(&self, name: &str) -> Option<Vec<(i64, String)>> {
        self.info.get().values().find_map(|ty| match ty {
            TypeVariant::Enum(e) if e.name().as_deref() == Some(name) => Some(
                e.named_value_list()
                    .iter()
                    .map(|v| {
                        let n = match v.value {
                            btfparse::Integer32Value::Signed(s) => i64::from(s),
                            btfparse::Integer32Value::Unsigned(u) => i64::from(u),
                        };
                        (n, v.name.clone())
                    })
                    .collect(),
            ),
            _ => None,
        })
    }
}

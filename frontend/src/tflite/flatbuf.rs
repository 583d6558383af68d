//! A bounds-checked reader of FlatBuffers, the serialisation TFLite models
//! use: just enough of the format (tables with vtables, vectors, strings,
//! scalars) to walk a schema written out by hand in [`super::schema`]. No
//! schema compiler, no `unsafe`: every offset is checked against the
//! buffer before it is followed, so a truncated or hostile file gives an
//! error naming what was being read, never a panic.
//!
//! The format (flatbuffers.dev, "Internals"): the buffer starts with a
//! `u32` offset to the root table. A table starts with an `i32` offset back
//! to its vtable; the vtable holds its own size, the table's size, then one
//! `u16` per field: the field's offset inside the table, 0 when absent (the
//! field has its schema default). Reference fields hold a `u32` offset,
//! relative to the field, to a table, a vector (`u32` length, then the
//! elements) or a string (a byte vector). Everything is little-endian.

use std::fmt;

/// A malformed buffer: `what` was being read at byte `at`.
#[derive(Clone, Debug, PartialEq)]
pub struct FlatError {
    pub what: String,
    pub at: usize,
}

impl fmt::Display for FlatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {} lies outside the file or is malformed", self.what, self.at)
    }
}

pub type FlatResult<T> = Result<T, FlatError>;

fn fail<T>(what: impl Into<String>, at: usize) -> FlatResult<T> {
    Err(FlatError { what: what.into(), at })
}

/// Little-endian scalars the reader can load.
pub trait Scalar: Copy {
    const SIZE: usize;
    fn from_le(bytes: &[u8]) -> Self;
}

macro_rules! scalar {
    ($($t:ty),*) => {$(
        impl Scalar for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn from_le(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("the caller passes SIZE bytes"))
            }
        }
    )*};
}
scalar!(u8, i8, u16, i16, u32, i32, u64, i64, f32);

impl Scalar for bool {
    const SIZE: usize = 1;
    fn from_le(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
}

/// Reads a `T` at byte `at` of `buf`.
fn read<T: Scalar>(buf: &[u8], at: usize, what: &str) -> FlatResult<T> {
    match at.checked_add(T::SIZE).and_then(|end| buf.get(at..end)) {
        Some(bytes) => Ok(T::from_le(bytes)),
        None => fail(what, at),
    }
}

/// Follows the `u32` offset stored at `at` (relative to `at`).
fn follow(buf: &[u8], at: usize, what: &str) -> FlatResult<usize> {
    let offset: u32 = read(buf, at, what)?;
    match at.checked_add(offset as usize) {
        Some(target) if target < buf.len() => Ok(target),
        _ => fail(what, at),
    }
}

/// A table: a position in the buffer and its vtable.
#[derive(Clone, Copy)]
pub struct Table<'a> {
    buf: &'a [u8],
    pos: usize,
    vtable: usize,
    vtable_len: usize,
}

impl<'a> Table<'a> {
    /// The root table of a buffer.
    pub fn root(buf: &'a [u8]) -> FlatResult<Self> {
        let pos = follow(buf, 0, "the root table offset")?;
        Table::at(buf, pos, "the root table")
    }

    fn at(buf: &'a [u8], pos: usize, what: &str) -> FlatResult<Self> {
        let back: i32 = read(buf, pos, what)?;
        let vtable = (pos as i64) - (back as i64);
        if vtable < 0 || vtable as usize >= buf.len() {
            return fail(format!("the vtable of {what}"), pos);
        }
        let vtable = vtable as usize;
        let vtable_len: u16 = read(buf, vtable, what)?;
        if vtable_len < 4 || !vtable_len.is_multiple_of(2) || vtable + vtable_len as usize > buf.len() {
            return fail(format!("the vtable of {what}"), vtable);
        }
        Ok(Table { buf, pos, vtable, vtable_len: vtable_len as usize })
    }

    /// Where field `id`'s value lies, if the table has it.
    fn field(&self, id: usize, what: &str) -> FlatResult<Option<usize>> {
        let slot = 4 + 2 * id;
        if slot + 2 > self.vtable_len {
            return Ok(None);
        }
        let offset: u16 = read(self.buf, self.vtable + slot, what)?;
        Ok((offset != 0).then_some(self.pos + offset as usize))
    }

    /// Scalar field `id`, or `default` when absent.
    pub fn scalar<T: Scalar>(&self, id: usize, default: T, what: &str) -> FlatResult<T> {
        match self.field(id, what)? {
            Some(at) => read(self.buf, at, what),
            None => Ok(default),
        }
    }

    /// Table field `id`, if present.
    pub fn table(&self, id: usize, what: &str) -> FlatResult<Option<Table<'a>>> {
        match self.field(id, what)? {
            Some(at) => Ok(Some(Table::at(self.buf, follow(self.buf, at, what)?, what)?)),
            None => Ok(None),
        }
    }

    /// Vector field `id` (empty when absent).
    pub fn vector(&self, id: usize, what: &str) -> FlatResult<Vector<'a>> {
        let Some(at) = self.field(id, what)? else {
            return Ok(Vector { buf: self.buf, start: 0, len: 0 });
        };
        let v = follow(self.buf, at, what)?;
        let len: u32 = read(self.buf, v, what)?;
        Ok(Vector { buf: self.buf, start: v + 4, len: len as usize })
    }

    /// Whether field `id` is present.
    pub fn has(&self, id: usize) -> bool {
        matches!(self.field(id, ""), Ok(Some(_)))
    }

    /// String field `id` (empty when absent); invalid UTF-8 is replaced.
    pub fn string(&self, id: usize, what: &str) -> FlatResult<String> {
        let v = self.vector(id, what)?;
        Ok(String::from_utf8_lossy(v.bytes(what)?).into_owned())
    }
}

/// A vector: `len` elements from byte `start`.
#[derive(Clone, Copy)]
pub struct Vector<'a> {
    buf: &'a [u8],
    start: usize,
    len: usize,
}

impl<'a> Vector<'a> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements as raw bytes (for `[ubyte]` vectors: buffer data).
    pub fn bytes(&self, what: &str) -> FlatResult<&'a [u8]> {
        self.raw(1, what)
    }

    /// The bytes of `len` elements of `size` bytes.
    pub fn raw(&self, size: usize, what: &str) -> FlatResult<&'a [u8]> {
        let end = self.len.checked_mul(size).and_then(|n| n.checked_add(self.start));
        match end.and_then(|end| self.buf.get(self.start..end)) {
            Some(bytes) => Ok(bytes),
            None => fail(format!("{what} ({} elements)", self.len), self.start),
        }
    }

    /// The elements of a scalar vector.
    pub fn scalars<T: Scalar>(&self, what: &str) -> FlatResult<Vec<T>> {
        let bytes = self.raw(T::SIZE, what)?;
        Ok(bytes.chunks_exact(T::SIZE).map(T::from_le).collect())
    }

    /// Element `i` of a vector of tables.
    pub fn table(&self, i: usize, what: &str) -> FlatResult<Table<'a>> {
        if i >= self.len {
            return fail(format!("{what} (index {i} of {})", self.len), self.start);
        }
        let at = self.start + 4 * i;
        Table::at(self.buf, follow(self.buf, at, what)?, what)
    }

    /// Element `i` of a vector of strings.
    pub fn string(&self, i: usize, what: &str) -> FlatResult<String> {
        if i >= self.len {
            return fail(format!("{what} (index {i} of {})", self.len), self.start);
        }
        let at = follow(self.buf, self.start + 4 * i, what)?;
        let len: u32 = read(self.buf, at, what)?;
        let v = Vector { buf: self.buf, start: at + 4, len: len as usize };
        Ok(String::from_utf8_lossy(v.bytes(what)?).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table with one u32 field (id 1) = 7 and a vector field (id 0) of
    /// two i32s, written by hand.
    fn sample() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(12u32.to_le_bytes()); // 0: root offset -> 12
        // 4: vtable: size 8, table size 12, field 0 at +4, field 1 at +8
        b.extend(8u16.to_le_bytes());
        b.extend(12u16.to_le_bytes());
        b.extend(4u16.to_le_bytes());
        b.extend(8u16.to_le_bytes());
        // 12: table: soffset to vtable (12 - 4 = 8)
        b.extend(8i32.to_le_bytes());
        b.extend(8u32.to_le_bytes()); // 16: field 0: vector at 16 + 8 = 24
        b.extend(7u32.to_le_bytes()); // 20: field 1
        b.extend(2u32.to_le_bytes()); // 24: vector length
        b.extend((-3i32).to_le_bytes());
        b.extend(5i32.to_le_bytes());
        b
    }

    #[test]
    fn reads_fields_vectors_and_defaults() {
        let buf = sample();
        let t = Table::root(&buf).unwrap();
        assert_eq!(t.scalar::<u32>(1, 0, "f").unwrap(), 7);
        assert_eq!(t.scalar::<u32>(2, 42, "f").unwrap(), 42, "absent fields have their default");
        assert_eq!(t.vector(0, "v").unwrap().scalars::<i32>("v").unwrap(), vec![-3, 5]);
        assert!(t.vector(3, "v").unwrap().is_empty());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let buf = sample();
        for len in 0..buf.len() {
            let cut = &buf[..len];
            let read_all = || -> FlatResult<(u32, Vec<i32>)> {
                let t = Table::root(cut)?;
                Ok((t.scalar(1, 0, "f")?, t.vector(0, "v")?.scalars("v")?))
            };
            assert!(read_all().is_err(), "a file cut at {len} bytes reads as valid");
        }
    }

    #[test]
    fn huge_vector_lengths_are_errors() {
        let mut buf = sample();
        buf[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        let t = Table::root(&buf).unwrap();
        assert!(t.vector(0, "v").unwrap().scalars::<i32>("v").is_err());
    }
}

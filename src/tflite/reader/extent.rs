//! Where the FlatBuffer ends: the highest byte any object the reader walked reaches, which
//! is also where data appended after the FlatBuffer starts.

/// The highest byte any FlatBuffer object we walked reaches: the FlatBuffer's size, and so
/// where appended data starts. Positions come from pointer arithmetic on verified slices;
/// nothing is read.
pub(super) struct Extent {
    base: usize,
    len: usize,
    pub(super) end: usize,
}

impl Extent {
    pub(super) fn new(bytes: &[u8]) -> Self {
        // The root offset and file identifier.
        Self {
            base: bytes.as_ptr() as usize,
            len: bytes.len(),
            end: 8.min(bytes.len()),
        }
    }

    pub(super) fn offset_of(&self, s: &[u8]) -> usize {
        (s.as_ptr() as usize)
            .saturating_sub(self.base)
            .min(self.len)
    }

    pub(super) fn note(&mut self, end: usize) {
        self.end = self.end.max(end.min(self.len));
    }

    /// A vector's elements (its 4-byte length sits just before them).
    pub(super) fn slice(&mut self, s: &[u8]) {
        let end = self.offset_of(s).saturating_add(s.len());
        self.note(end);
    }

    /// A string, plus its NUL terminator.
    pub(super) fn str<'s>(&mut self, s: &'s str) -> &'s str {
        let end = self
            .offset_of(s.as_bytes())
            .saturating_add(s.len())
            .saturating_add(1);
        self.note(end);
        s
    }

    /// A table and its vtable. Read with checked accesses, not through `flatbuffers::VTable`:
    /// the verifier accepts a vtable shorter than its 4-byte header, and `VTable` would then
    /// read past it (found by the fuzzer, `tests/fixtures/tflite/regressions/`).
    pub(super) fn table(&mut self, tab: &flatbuffers::Table<'_>) {
        let buf = tab.buf();
        let loc = tab.loc();
        let u16_at = |at: usize| -> Option<usize> {
            let b = buf.get(at..at.checked_add(2)?)?;
            Some(usize::from(u16::from_le_bytes([*b.first()?, *b.get(1)?])))
        };
        let Some(soffset) = buf
            .get(loc..loc.saturating_add(4))
            .and_then(|b| b.try_into().ok())
            .map(i32::from_le_bytes)
        else {
            return;
        };
        // The vtable sits at `loc - soffset`.
        let Some(vt) = i64::try_from(loc)
            .ok()
            .and_then(|l| usize::try_from(l - i64::from(soffset)).ok())
        else {
            return;
        };
        let vt_len = u16_at(vt).unwrap_or(0);
        let object_len = if vt_len >= 4 {
            u16_at(vt + 2).unwrap_or(4)
        } else {
            4
        };
        self.note(vt.saturating_add(vt_len));
        self.note(loc.saturating_add(object_len.max(4)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extent_tracks_the_furthest_byte() {
        let bytes = [0u8; 64];
        let mut e = Extent::new(&bytes);
        assert_eq!(e.end, 8);
        e.slice(&bytes[10..20]);
        assert_eq!(e.end, 20);
        e.slice(&bytes[0..4]);
        assert_eq!(e.end, 20);
        let s = std::str::from_utf8(&bytes[30..40]).unwrap();
        e.str(s);
        assert_eq!(e.end, 41, "a string's NUL terminator belongs to it");
        e.note(1000);
        assert_eq!(e.end, 64, "never past the end of the buffer");
    }
}

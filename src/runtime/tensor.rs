//! Tensors as `litert run` and golden outputs handle them: a dtype, a shape and row-major
//! little-endian bytes, read from and written to numpy `.npz` files with `ndarray-npy`.

use std::io::{Read, Seek, Write};

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{NpzReader, NpzWriter, ReadNpyError, ReadNpzError};

/// The element types `litert run` reads and writes (numpy names; LiteRT type codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F64,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    Bool,
}

impl Dtype {
    pub const ALL: [Dtype; 11] = [
        Dtype::F32,
        Dtype::F64,
        Dtype::I8,
        Dtype::U8,
        Dtype::I16,
        Dtype::U16,
        Dtype::I32,
        Dtype::U32,
        Dtype::I64,
        Dtype::U64,
        Dtype::Bool,
    ];

    /// The numpy name, as the native reader names tensor types.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
            Dtype::I8 => "int8",
            Dtype::U8 => "uint8",
            Dtype::I16 => "int16",
            Dtype::U16 => "uint16",
            Dtype::I32 => "int32",
            Dtype::U32 => "uint32",
            Dtype::I64 => "int64",
            Dtype::U64 => "uint64",
            Dtype::Bool => "bool",
        }
    }

    pub fn from_name(name: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.name() == name)
    }

    /// `LiteRtElementType` / `TfLiteType` code.
    pub fn code(self) -> i32 {
        match self {
            Dtype::F32 => 1,
            Dtype::I32 => 2,
            Dtype::U8 => 3,
            Dtype::I64 => 4,
            Dtype::Bool => 6,
            Dtype::I16 => 7,
            Dtype::I8 => 9,
            Dtype::F64 => 11,
            Dtype::U64 => 13,
            Dtype::U32 => 16,
            Dtype::U16 => 17,
        }
    }

    pub fn size(self) -> usize {
        match self {
            Dtype::I8 | Dtype::U8 | Dtype::Bool => 1,
            Dtype::I16 | Dtype::U16 => 2,
            Dtype::F32 | Dtype::I32 | Dtype::U32 => 4,
            Dtype::F64 | Dtype::I64 | Dtype::U64 => 8,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Dtype::F32 | Dtype::F64)
    }
}

/// A dense tensor: row-major, little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

/// Apply `$body` with `$t` bound to the Rust element type of `$dtype`.
macro_rules! with_type {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            Dtype::F32 => {
                type $t = f32;
                $body
            }
            Dtype::F64 => {
                type $t = f64;
                $body
            }
            Dtype::I8 => {
                type $t = i8;
                $body
            }
            Dtype::U8 => {
                type $t = u8;
                $body
            }
            Dtype::I16 => {
                type $t = i16;
                $body
            }
            Dtype::U16 => {
                type $t = u16;
                $body
            }
            Dtype::I32 => {
                type $t = i32;
                $body
            }
            Dtype::U32 => {
                type $t = u32;
                $body
            }
            Dtype::I64 => {
                type $t = i64;
                $body
            }
            Dtype::U64 => {
                type $t = u64;
                $body
            }
            Dtype::Bool => {
                type $t = bool;
                $body
            }
        }
    };
}

/// Little-endian bytes of one element type, without unsafe code.
trait Le: Sized + Copy + 'static {
    fn put(self, out: &mut Vec<u8>);
    fn get(bytes: &[u8]) -> Self;
    fn as_f64(self) -> f64;
}

macro_rules! le_num {
    ($($t:ty),*) => {$(
        impl Le for $t {
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(bytes);
                <$t>::from_le_bytes(a)
            }
            #[allow(clippy::cast_lossless, clippy::cast_precision_loss)]
            fn as_f64(self) -> f64 {
                self as f64
            }
        }
    )*};
}
le_num!(f32, f64, i8, u8, i16, u16, i32, u32, i64, u64);

impl Le for bool {
    fn put(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }
    fn get(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
    fn as_f64(self) -> f64 {
        f64::from(u8::from(self))
    }
}

impl Tensor {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    fn from_array<T: Le>(dtype: Dtype, a: &ArrayD<T>) -> Tensor {
        let mut bytes = Vec::with_capacity(a.len() * dtype.size());
        // `iter` walks in logical (row-major) order whatever the memory layout (Fortran-order
        // files included).
        for &x in a.iter() {
            x.put(&mut bytes);
        }
        Tensor {
            dtype,
            shape: a.shape().to_vec(),
            bytes,
        }
    }

    fn values<T: Le>(&self) -> impl Iterator<Item = T> + '_ {
        self.bytes.chunks_exact(self.dtype.size()).map(T::get)
    }

    fn to_array<T: Le>(&self) -> Result<ArrayD<T>, String> {
        ArrayD::from_shape_vec(IxDyn(&self.shape), self.values::<T>().collect())
            .map_err(|e| e.to_string())
    }

    /// Every element as `f64` (for comparisons against reference outputs).
    pub fn to_f64(&self) -> Vec<f64> {
        with_type!(self.dtype, T => self.values::<T>().map(T::as_f64).collect())
    }
}

/// Read every array of an `.npz` file, in file order.
pub fn read_npz<R: Read + Seek>(reader: R) -> Result<Vec<(String, Tensor)>, String> {
    let mut npz = NpzReader::new(reader).map_err(|e| format!("not a readable .npz file: {e}"))?;
    let names = npz.names().map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let tensor = read_any(&mut npz, &name)?;
        out.push((name, tensor));
    }
    Ok(out)
}

/// Read one array, whatever its dtype (trying each supported one).
fn read_any<R: Read + Seek>(npz: &mut NpzReader<R>, name: &str) -> Result<Tensor, String> {
    let mut descr = None;
    for dtype in Dtype::ALL {
        let got: Result<Tensor, ReadNpzError> = with_type!(dtype, T => npz
            .by_name::<ndarray::OwnedRepr<T>, IxDyn>(name)
            .map(|a| Tensor::from_array(dtype, &a)));
        match got {
            Ok(t) => return Ok(t),
            Err(ReadNpzError::Npy(ReadNpyError::WrongDescriptor(d))) => {
                descr = Some(d.to_string());
            }
            Err(e) => return Err(format!("array `{name}`: {e}")),
        }
    }
    Err(format!(
        "array `{name}` has numpy type {}, which litert does not read (it reads {})",
        descr.unwrap_or_else(|| "?".into()),
        Dtype::ALL.map(Dtype::name).join(", ")
    ))
}

/// Read one `.npy` file's array, whatever its dtype.
pub fn read_npy(bytes: &[u8]) -> Result<Tensor, String> {
    use ndarray_npy::ReadNpyExt;
    let mut descr = None;
    for dtype in Dtype::ALL {
        let got: Result<Tensor, ReadNpyError> = with_type!(dtype, T =>
            ArrayD::<T>::read_npy(std::io::Cursor::new(bytes)).map(|a| Tensor::from_array(dtype, &a)));
        match got {
            Ok(t) => return Ok(t),
            Err(ReadNpyError::WrongDescriptor(d)) => descr = Some(d.to_string()),
            Err(e) => return Err(format!("not a readable .npy file: {e}")),
        }
    }
    Err(format!(
        "numpy type {} is not one litert reads (it reads {})",
        descr.unwrap_or_else(|| "?".into()),
        Dtype::ALL.map(Dtype::name).join(", ")
    ))
}

/// Write tensors as a compressed `.npz` into `writer`.
pub fn write_npz<W: Write + Seek>(writer: W, tensors: &[(String, Tensor)]) -> Result<W, String> {
    let mut npz = NpzWriter::new_compressed(writer);
    for (name, t) in tensors {
        with_type!(t.dtype, T => {
            let a = t.to_array::<T>()?;
            npz.add_array(name.as_str(), &a).map_err(|e| e.to_string())?;
        });
    }
    npz.finish().map_err(|e| e.to_string())
}

/// The `.npz` bytes of `tensors`.
pub fn npz_bytes(tensors: &[(String, Tensor)]) -> Result<Vec<u8>, String> {
    let cursor = write_npz(std::io::Cursor::new(Vec::new()), tensors)?;
    Ok(cursor.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npz_round_trip_keeps_dtype_shape_and_values() {
        let tensors = vec![
            (
                "x".to_string(),
                Tensor {
                    dtype: Dtype::F32,
                    shape: vec![2, 2],
                    bytes: [1.0f32, -2.5, 3.0, 4.0]
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect(),
                },
            ),
            (
                "ids".to_string(),
                Tensor {
                    dtype: Dtype::I8,
                    shape: vec![3],
                    bytes: vec![0x80, 0, 0x7f],
                },
            ),
        ];
        let bytes = npz_bytes(&tensors).unwrap();
        let back = read_npz(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(back, tensors);
        assert_eq!(back[1].1.to_f64(), vec![-128.0, 0.0, 127.0]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let err = read_npz(std::io::Cursor::new(b"PK\x03\x04garbage".to_vec())).unwrap_err();
        assert!(err.contains("npz"), "{err}");
    }
}

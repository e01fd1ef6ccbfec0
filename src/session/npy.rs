//! Reading and writing tensors in NumPy's `.npy` format (versions 1.0, 2.0 and 3.0).
//!
//! Supported element types are `float32`, `float64`, `int64`, `int32`, `uint8` and `bool`,
//! in either byte order and in C or Fortran order. Object arrays, structured types and
//! `.npz` archives are not supported.

use std::path::Path;

use ndarray::{ArrayD, IxDyn, ShapeBuilder};

use super::tensor::{DType, Tensor};
use crate::error::NpyError;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Reads a tensor from a `.npy` file.
pub fn read_npy(path: impl AsRef<Path>) -> Result<Tensor, NpyError> {
    let path = path.as_ref();
    let bytes =
        std::fs::read(path).map_err(|source| NpyError::Io { path: path.to_owned(), source })?;
    parse_npy(&bytes).map_err(|detail| NpyError::Format { path: path.to_owned(), detail })
}

/// Writes a tensor to a `.npy` file (version 1.0, little-endian, C order).
pub fn write_npy(path: impl AsRef<Path>, tensor: &Tensor) -> Result<(), NpyError> {
    let path = path.as_ref();
    std::fs::write(path, encode_npy(tensor))
        .map_err(|source| NpyError::Io { path: path.to_owned(), source })
}

/// Parses the bytes of a `.npy` file.
pub fn parse_npy(bytes: &[u8]) -> Result<Tensor, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("missing the \\x93NUMPY magic bytes at the start".into());
    }
    let major = bytes[6];
    let (header_len, header_start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            let raw = bytes.get(8..12).ok_or("the file ends inside the header")?;
            (u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize, 12)
        }
        _ => return Err(format!("format version {major} is not supported (1, 2 or 3 are)")),
    };
    let header_end = header_start + header_len;
    let header = bytes.get(header_start..header_end).ok_or("the file ends inside the header")?;
    let header = std::str::from_utf8(header).map_err(|_| "the header is not text")?;
    let descr = dict_value(header, "descr")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran = match dict_value(header, "fortran_order")? {
        "True" => true,
        "False" => false,
        other => return Err(format!("fortran_order is {other}, not True or False")),
    };
    let shape = parse_shape(dict_value(header, "shape")?)?;
    let (dtype, width, big_endian) = parse_descr(descr)?;
    let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let count = count.ok_or("the shape has more elements than fit in memory")?;
    let data = &bytes[header_end..];
    let needed = count.checked_mul(width).ok_or("the shape is too large")?;
    if data.len() < needed {
        return Err(format!(
            "the shape {shape:?} of {dtype} needs {needed} data bytes but the file has {} \
             (truncated?)",
            data.len()
        ));
    }
    let data = &data[..needed];
    let dims = IxDyn(&shape).set_f(fortran);
    macro_rules! decode {
        ($variant:ident, $ty:ty, $n:literal) => {{
            let values: Vec<$ty> = data
                .chunks_exact($n)
                .map(|chunk| {
                    let mut raw = [0u8; $n];
                    raw.copy_from_slice(chunk);
                    if big_endian { <$ty>::from_be_bytes(raw) } else { <$ty>::from_le_bytes(raw) }
                })
                .collect();
            Tensor::$variant(to_array(dims, values)?)
        }};
    }
    Ok(match dtype {
        DType::F32 => decode!(F32, f32, 4),
        DType::F64 => decode!(F64, f64, 8),
        DType::I64 => decode!(I64, i64, 8),
        DType::I32 => decode!(I32, i32, 4),
        DType::U8 => Tensor::U8(to_array(dims, data.to_vec())?),
        DType::Bool => Tensor::Bool(to_array(dims, data.iter().map(|&b| b != 0).collect())?),
    })
}

fn to_array<T>(dims: ndarray::Shape<IxDyn>, values: Vec<T>) -> Result<ArrayD<T>, String> {
    ArrayD::from_shape_vec(dims, values)
        .map_err(|e| format!("the data does not fit the shape: {e}"))
}

/// Returns the text of `key`'s value in the header's Python dict literal.
fn dict_value<'a>(header: &'a str, key: &str) -> Result<&'a str, String> {
    let missing = || format!("the header has no {key:?} entry");
    let start = header.find(&format!("'{key}'")).ok_or_else(missing)? + key.len() + 2;
    let rest = header[start..].trim_start();
    let rest = rest.strip_prefix(':').ok_or_else(missing)?.trim_start();
    let end =
        if rest.starts_with('(') { rest.find(')').map(|i| i + 1) } else { rest.find([',', '}']) };
    Ok(rest[..end.ok_or_else(missing)?].trim())
}

fn parse_shape(text: &str) -> Result<Vec<usize>, String> {
    let inner = text.trim_start_matches('(').trim_end_matches(')');
    inner
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| part.trim_end_matches('L').parse().map_err(|_| format!("bad shape {text}")))
        .collect()
}

fn parse_descr(descr: &str) -> Result<(DType, usize, bool), String> {
    let (order, code) = descr.split_at(descr.len().min(1));
    let big_endian = order == ">";
    if !matches!(order, "<" | ">" | "|" | "=") {
        return Err(format!("element type {descr:?} is not supported"));
    }
    Ok(match code {
        "f4" => (DType::F32, 4, big_endian),
        "f8" => (DType::F64, 8, big_endian),
        "i8" => (DType::I64, 8, big_endian),
        "i4" => (DType::I32, 4, big_endian),
        "u1" => (DType::U8, 1, false),
        "b1" => (DType::Bool, 1, false),
        _ => {
            return Err(format!(
                "element type {descr:?} is not supported: save as float32, float64, int64, \
                 int32, uint8 or bool"
            ));
        }
    })
}

/// Returns the magic, version and header of a version 1.0 `.npy` file.
fn npy_header(descr: &str, fortran: bool, shape: &[usize]) -> Vec<u8> {
    let shape_text = match shape {
        [single] => format!("({single},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let order = if fortran { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape_text}, }}");
    // The data starts at a multiple of 64 bytes; the header ends with a newline.
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut bytes = Vec::with_capacity(MAGIC.len() + 4 + header.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&[1, 0]);
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes
}

/// Encodes a tensor as the bytes of a version 1.0 `.npy` file.
pub fn encode_npy(tensor: &Tensor) -> Vec<u8> {
    let descr = match tensor.dtype() {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::I64 => "<i8",
        DType::I32 => "<i4",
        DType::U8 => "|u1",
        DType::Bool => "|b1",
    };
    let mut bytes = npy_header(descr, false, tensor.shape());
    fn push<T: Copy>(bytes: &mut Vec<u8>, array: &ArrayD<T>, encode: impl Fn(T) -> Vec<u8>) {
        for &value in array.iter() {
            bytes.extend(encode(value));
        }
    }
    match tensor {
        Tensor::F32(a) => push(&mut bytes, a, |v| v.to_le_bytes().to_vec()),
        Tensor::F64(a) => push(&mut bytes, a, |v| v.to_le_bytes().to_vec()),
        Tensor::I64(a) => push(&mut bytes, a, |v| v.to_le_bytes().to_vec()),
        Tensor::I32(a) => push(&mut bytes, a, |v| v.to_le_bytes().to_vec()),
        Tensor::U8(a) => push(&mut bytes, a, |v| vec![v]),
        Tensor::Bool(a) => push(&mut bytes, a, |v| vec![u8::from(v)]),
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_values_and_shape() {
        let array = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1.5f32, -2.0, 3.25, 0.0, 7.0, 9.5])
            .unwrap();
        let tensor = Tensor::F32(array);
        let bytes = encode_npy(&tensor);
        assert_eq!((bytes.len() - 24) % 64, 0, "the data must start at a multiple of 64");
        assert_eq!(parse_npy(&bytes).unwrap(), tensor);
    }

    #[test]
    fn fortran_order_is_transposed() {
        // numpy.asfortranarray([[1, 2, 3], [4, 5, 6]], dtype='<i8') stores 1 4 2 5 3 6.
        let mut bytes = npy_header("<i8", true, &[2, 3]);
        bytes.extend([1i64, 4, 2, 5, 3, 6].iter().flat_map(|v| v.to_le_bytes()));
        let Tensor::I64(array) = parse_npy(&bytes).unwrap() else { panic!("wrong type") };
        assert_eq!(array.shape(), &[2, 3]);
        assert_eq!(array.iter().copied().collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn big_endian_floats_are_swapped() {
        let mut bytes = npy_header(">f4", false, &[2]);
        bytes.extend([0.5f32, -3.0].iter().flat_map(|v| v.to_be_bytes()));
        let Tensor::F32(array) = parse_npy(&bytes).unwrap() else { panic!("wrong type") };
        assert_eq!(array.iter().copied().collect::<Vec<_>>(), vec![0.5, -3.0]);
    }

    #[test]
    fn truncated_data_is_reported() {
        let bytes = encode_npy(&Tensor::F32(ArrayD::zeros(IxDyn(&[4, 4]))));
        let error = parse_npy(&bytes[..bytes.len() - 5]).unwrap_err();
        assert!(error.contains("needs 64 data bytes but the file has 59"), "{error}");
    }

    #[test]
    fn unsupported_type_is_named() {
        let mut bytes = npy_header("<c8", false, &[1]);
        bytes.extend([0u8; 8]);
        let error = parse_npy(&bytes).unwrap_err();
        assert!(error.contains("\"<c8\" is not supported"), "{error}");
    }

    #[test]
    fn not_npy_is_rejected() {
        assert!(parse_npy(b"hello world, not numpy").unwrap_err().contains("magic"));
    }
}

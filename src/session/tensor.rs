//! Tensors passed to and returned by a model, and their declared types.

use std::fmt;

use ndarray::ArrayD;

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// 32-bit float (`float32`).
    F32,
    /// 64-bit float (`float64`).
    F64,
    /// 64-bit signed integer (`int64`).
    I64,
    /// 32-bit signed integer (`int32`).
    I32,
    /// 8-bit unsigned integer (`uint8`).
    U8,
    /// Boolean.
    Bool,
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::U8 => "uint8",
            DType::Bool => "bool",
        })
    }
}

/// An n-dimensional array of one of the supported element types.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Tensor {
    /// `float32` elements.
    F32(ArrayD<f32>),
    /// `float64` elements.
    F64(ArrayD<f64>),
    /// `int64` elements.
    I64(ArrayD<i64>),
    /// `int32` elements.
    I32(ArrayD<i32>),
    /// `uint8` elements.
    U8(ArrayD<u8>),
    /// Boolean elements.
    Bool(ArrayD<bool>),
}

macro_rules! for_each_tensor {
    ($tensor:expr, $array:ident => $body:expr) => {
        match $tensor {
            Tensor::F32($array) => $body,
            Tensor::F64($array) => $body,
            Tensor::I64($array) => $body,
            Tensor::I32($array) => $body,
            Tensor::U8($array) => $body,
            Tensor::Bool($array) => $body,
        }
    };
}
#[allow(unused_imports, reason = "used by backends behind features")]
pub(crate) use for_each_tensor;

impl Tensor {
    /// Returns the element type.
    pub fn dtype(&self) -> DType {
        match self {
            Tensor::F32(_) => DType::F32,
            Tensor::F64(_) => DType::F64,
            Tensor::I64(_) => DType::I64,
            Tensor::I32(_) => DType::I32,
            Tensor::U8(_) => DType::U8,
            Tensor::Bool(_) => DType::Bool,
        }
    }

    /// Returns the shape.
    pub fn shape(&self) -> &[usize] {
        for_each_tensor!(self, array => array.shape())
    }

    /// Returns the elements as `f32` if the tensor contains `float32`.
    pub fn as_f32(&self) -> Option<&ArrayD<f32>> {
        match self {
            Tensor::F32(array) => Some(array),
            _ => None,
        }
    }

    /// Returns a tensor of `shape` filled with a fixed pattern of small values, for models
    /// that ship no sample input. Floats follow a ramp in [-1, 1), integers are 0 and
    /// booleans false, so every run and backend gets the same input.
    pub fn generated(dtype: DType, shape: &[usize]) -> Tensor {
        let shape = ndarray::IxDyn(shape);
        let ramp = |index: usize| ((index * 37) % 200) as f64 / 100.0 - 1.0;
        match dtype {
            DType::F32 => {
                let mut array = ArrayD::<f32>::zeros(shape);
                array.iter_mut().enumerate().for_each(|(i, v)| *v = ramp(i) as f32);
                Tensor::F32(array)
            }
            DType::F64 => {
                let mut array = ArrayD::<f64>::zeros(shape);
                array.iter_mut().enumerate().for_each(|(i, v)| *v = ramp(i));
                Tensor::F64(array)
            }
            DType::I64 => Tensor::I64(ArrayD::zeros(shape)),
            DType::I32 => Tensor::I32(ArrayD::zeros(shape)),
            DType::U8 => Tensor::U8(ArrayD::zeros(shape)),
            DType::Bool => Tensor::Bool(ArrayD::from_elem(shape, false)),
        }
    }
}

impl From<ArrayD<f32>> for Tensor {
    fn from(array: ArrayD<f32>) -> Self {
        Tensor::F32(array)
    }
}

impl From<ArrayD<i64>> for Tensor {
    fn from(array: ArrayD<i64>) -> Self {
        Tensor::I64(array)
    }
}

/// A dimension of a declared shape: a fixed size or a free one (batch, sequence length).
pub type Dim = Option<usize>;

/// The name, element type and shape a model declares for one of its inputs or outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The name in the model.
    pub name: String,
    /// The element type.
    pub dtype: DType,
    /// The shape; `None` marks a free dimension. `None` for the whole shape means the rank
    /// is unknown too.
    pub shape: Option<Vec<Dim>>,
}

impl TensorInfo {
    /// Returns the shape as `[1,3,48,?]`, with `?` for free dimensions.
    pub fn shape_string(&self) -> String {
        match &self.shape {
            None => "[any shape]".to_owned(),
            Some(dims) => format_dims(dims.iter().map(|d| d.map_or("?".into(), |d| d.to_string()))),
        }
    }

    /// Returns true when `shape` fits the declared shape.
    pub fn accepts_shape(&self, shape: &[usize]) -> bool {
        match &self.shape {
            None => true,
            Some(dims) => {
                dims.len() == shape.len()
                    && dims.iter().zip(shape).all(|(dim, &size)| dim.is_none_or(|d| d == size))
            }
        }
    }

    /// Returns a concrete shape for a generated input: free dimensions become 1.
    pub fn example_shape(&self) -> Vec<usize> {
        self.shape
            .as_ref()
            .map_or_else(|| vec![1], |dims| dims.iter().map(|d| d.unwrap_or(1)).collect())
    }
}

/// Formats a shape as `[1,3,48,192]`.
pub fn shape_string(shape: &[usize]) -> String {
    format_dims(shape.iter().map(|d| d.to_string()))
}

fn format_dims(dims: impl Iterator<Item = String>) -> String {
    format!("[{}]", dims.collect::<Vec<_>>().join(","))
}

impl fmt::Display for TensorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}{}", self.name, self.dtype, self.shape_string())
    }
}

/// Tensors by name, in order: a model's inputs or outputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TensorMap {
    entries: Vec<(String, Tensor)>,
}

impl TensorMap {
    /// Creates an empty map.
    pub fn new() -> Self {
        TensorMap::default()
    }

    /// Adds a tensor, replacing one of the same name.
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) {
        let name = name.into();
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = tensor,
            None => self.entries.push((name, tensor)),
        }
    }

    /// Returns the tensor named `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Removes and returns the tensor named `name`.
    pub fn remove(&mut self, name: &str) -> Option<Tensor> {
        let index = self.entries.iter().position(|(n, _)| n == name)?;
        Some(self.entries.remove(index).1)
    }

    /// Returns the number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns true when the map contains no tensor.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Iterates over names and tensors in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.entries.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// Returns the names and tensors in order.
    pub fn into_vec(self) -> Vec<(String, Tensor)> {
        self.entries
    }
}

impl<S: Into<String>> FromIterator<(S, Tensor)> for TensorMap {
    fn from_iter<I: IntoIterator<Item = (S, Tensor)>>(iter: I) -> Self {
        let mut map = TensorMap::new();
        for (name, tensor) in iter {
            map.insert(name, tensor);
        }
        map
    }
}

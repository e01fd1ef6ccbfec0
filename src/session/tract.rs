//! The tract backend: pure Rust, needs nothing installed.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::{Factoid, InferenceFact};

use super::backend::{Backend, SessionOptions};
use super::tensor::{DType, Dim, Tensor as IwTensor, TensorInfo};
use crate::error::SessionError;

const NAME: &str = "tract";

/// A model loaded and optimized by tract.
///
/// Loading reads the ONNX file, fixes the input types and shapes (the model's own, or the
/// concrete shapes of [`SessionOptions::input_shapes`] for inputs with free dimensions),
/// then optimizes the graph once. All threads share the one optimized plan; each `run`
/// makes its own execution state, so runs on different threads do not wait for each other.
/// tract runs each inference on the calling thread only.
pub struct TractBackend {
    plan: Arc<TypedRunnableModel>,
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
}

impl std::fmt::Debug for TractBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractBackend")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

impl TractBackend {
    /// Reads the model at `path` and returns its declared inputs without optimizing it.
    pub fn declared_inputs(path: &Path) -> Result<Vec<TensorInfo>, SessionError> {
        let model = parse(path)?;
        (0..model.inputs.len()).map(|index| input_info(path, &model, index)).collect()
    }

    /// Loads and optimizes the model at `path`.
    pub fn load(path: &Path, options: &SessionOptions) -> Result<Self, SessionError> {
        let load_error = |e: TractError| classify(path, e);
        let mut model = parse(path)?;
        let mut inputs = Vec::new();
        let mut unfixed = Vec::new();
        for index in 0..model.inputs.len() {
            let mut info = input_info(path, &model, index)?;
            let declared_concrete =
                info.shape.as_ref().is_some_and(|dims| dims.iter().all(Option::is_some));
            if let Some(shape) = options.input_shapes.get(&info.name) {
                if !info.accepts_shape(shape) {
                    return Err(SessionError::WrongShape {
                        expected: info.shape_string(),
                        name: info.name,
                        actual: super::shape_string(shape),
                    });
                }
                if declared_concrete {
                    // The model's own facts already fix this input.
                    inputs.push(info);
                    continue;
                }
                info.shape = Some(shape.iter().map(|&d| Some(d)).collect());
                let fact = InferenceFact::dt_shape(datum_type(info.dtype), shape.as_slice());
                model.set_input_fact(index, fact).map_err(load_error)?;
            } else if !declared_concrete {
                unfixed.push(info.to_string());
            }
            inputs.push(info);
        }
        let typed = model.into_optimized().map_err(|error| {
            if unfixed.is_empty() {
                return load_error(error);
            }
            // tract optimizes for fixed shapes; free dimensions it cannot resolve end here.
            SessionError::Load {
                path: path.to_owned(),
                backend: NAME,
                detail: format!(
                    "the inputs {} have free dimensions that tract needs fixed: give their \
                     shapes in SessionOptions::input_shapes (SessionOptions::with_shapes_of \
                     takes them from example inputs; `inferwatch run` takes them from --input)",
                    unfixed.join(", ")
                ),
            }
        })?;
        let outputs = (0..typed.outputs.len())
            .map(|index| {
                let fact = typed.output_fact(index).map_err(load_error)?;
                let name = typed.outputs[index];
                let label = typed
                    .outlet_label(name)
                    .map(str::to_owned)
                    .unwrap_or_else(|| typed.node(name.node).name.clone());
                Ok(typed_info(&label, fact))
            })
            .collect::<Result<Vec<_>, SessionError>>()?;
        let plan = typed.into_runnable().map_err(load_error)?;
        Ok(TractBackend { plan, inputs, outputs })
    }
}

impl Backend for TractBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    fn outputs(&self) -> &[TensorInfo] {
        &self.outputs
    }

    fn run(&self, inputs: Vec<IwTensor>) -> Result<Vec<IwTensor>, SessionError> {
        let values: TVec<TValue> = inputs.into_iter().map(|t| to_tract(t).into()).collect();
        let run_error =
            |e: TractError| SessionError::Run { backend: NAME, detail: format!("{e:#}") };
        let outputs = self.plan.run(values).map_err(run_error)?;
        outputs
            .into_iter()
            .map(|value| from_tract(value.into_tensor()).map_err(run_error))
            .collect()
    }
}

/// Reads and decodes the ONNX file into tract's inference model.
fn parse(path: &Path) -> Result<InferenceModel, SessionError> {
    let bytes = std::fs::read(path)
        .map_err(|source| SessionError::ReadModel { path: path.to_owned(), source })?;
    let onnx = tract_onnx::onnx();
    let mut proto = onnx
        .proto_model_for_read(&mut bytes.as_slice())
        .map_err(|e| SessionError::NotOnnx { path: path.to_owned(), detail: format!("{e:#}") })?;
    let Some(graph) = proto.graph.as_mut().filter(|graph| !graph.node.is_empty()) else {
        return Err(SessionError::NotOnnx {
            path: path.to_owned(),
            detail: "the file decodes but holds no graph nodes".into(),
        });
    };
    rename_duplicate_nodes(graph);
    onnx.model_for_proto_model(&proto).map_err(|e| classify(path, e))
}

/// Gives every node of `graph` a name that no other node, input or initializer has.
///
/// ONNX does not require unique node names, and some exporters repeat one: the Silero VAD
/// model made by spox names 15 nodes `F0::anon`. tract names its nodes after the ONNX ones,
/// and its graph compaction checks that the names are unique whenever debug assertions are
/// on, so such a model failed to load in debug builds ("duplicate name for node").
fn rename_duplicate_nodes(graph: &mut tract_onnx::pb::GraphProto) {
    let mut taken: HashSet<String> = graph.initializer.iter().map(|i| i.name.clone()).collect();
    taken.extend(graph.input.iter().map(|i| i.name.clone()));
    for node in &mut graph.node {
        // The name tract gives the node: its own, or else its first output's.
        let name = if node.name.is_empty() {
            node.output.first().cloned().unwrap_or_default()
        } else {
            node.name.clone()
        };
        if name.is_empty() || taken.insert(name.clone()) {
            continue;
        }
        let unique = (1..).map(|k| format!("{name}.{k}")).find(|n| !taken.contains(n));
        if let Some(unique) = unique {
            taken.insert(unique.clone());
            node.name = unique;
        }
    }
}

fn input_info(
    path: &Path,
    model: &InferenceModel,
    index: usize,
) -> Result<TensorInfo, SessionError> {
    let name = model.node(model.inputs[index].node).name.clone();
    let fact = model.input_fact(index).map_err(|e| classify(path, e))?;
    declared_info(&name, fact).ok_or_else(|| SessionError::Load {
        path: path.to_owned(),
        backend: NAME,
        detail: format!("input {name:?} has an element type inferwatch does not handle"),
    })
}

/// Turns a tract load error into the most specific [`SessionError`].
fn classify(path: &Path, error: TractError) -> SessionError {
    let detail = format!("{error:#}");
    // tract keeps an unknown operator as an `UnimplementedOp` node; it fails when the graph is
    // typed, with a chain such as `Translating node #3 "foo" Unimplemented(NoSuchOp) ...`.
    if let Some(start) = detail.find("Unimplemented(") {
        let op: String = detail[start + 14..].chars().take_while(|&c| c != ')').collect();
        let node = detail[..start]
            .rsplit_once('"')
            .and_then(|(before, _)| before.rsplit_once('"'))
            .map(|(_, name)| name.to_owned())
            .unwrap_or_default();
        return SessionError::UnsupportedOperator {
            path: path.to_owned(),
            backend: NAME,
            node,
            op,
        };
    }
    SessionError::Load { path: path.to_owned(), backend: NAME, detail }
}

fn dtype_of(datum: DatumType) -> Option<DType> {
    Some(match datum {
        DatumType::F32 => DType::F32,
        DatumType::F64 => DType::F64,
        DatumType::I64 => DType::I64,
        DatumType::I32 => DType::I32,
        DatumType::U8 => DType::U8,
        DatumType::Bool => DType::Bool,
        _ => return None,
    })
}

fn datum_type(dtype: DType) -> DatumType {
    match dtype {
        DType::F32 => DatumType::F32,
        DType::F64 => DatumType::F64,
        DType::I64 => DatumType::I64,
        DType::I32 => DatumType::I32,
        DType::U8 => DatumType::U8,
        DType::Bool => DatumType::Bool,
    }
}

fn declared_info(name: &str, fact: &InferenceFact) -> Option<TensorInfo> {
    let dtype = dtype_of(fact.datum_type.concretize()?)?;
    // A dimension without a value in tract (ONNX `-1`, or none given) is free, like a symbolic
    // one. Only an open shape leaves the rank unknown.
    let shape = (!fact.shape.is_open()).then(|| {
        fact.shape.dims().map(|dim| dim.concretize().and_then(|dim| dim_size(&dim))).collect()
    });
    Some(TensorInfo { name: name.to_owned(), dtype, shape })
}

fn dim_size(dim: &TDim) -> Dim {
    dim.as_i64().and_then(|size| usize::try_from(size).ok())
}

fn typed_info(name: &str, fact: &TypedFact) -> TensorInfo {
    let dtype = dtype_of(fact.datum_type).unwrap_or(DType::F32);
    let shape = fact.shape.iter().map(dim_size).collect();
    TensorInfo { name: name.to_owned(), dtype, shape: Some(shape) }
}

fn to_tract(tensor: IwTensor) -> tract_onnx::prelude::Tensor {
    match tensor {
        IwTensor::F32(a) => a.into(),
        IwTensor::F64(a) => a.into(),
        IwTensor::I64(a) => a.into(),
        IwTensor::I32(a) => a.into(),
        IwTensor::U8(a) => a.into(),
        IwTensor::Bool(a) => a.into(),
    }
}

fn from_tract(tensor: tract_onnx::prelude::Tensor) -> TractResult<IwTensor> {
    Ok(match tensor.datum_type() {
        DatumType::F32 => IwTensor::F32(tensor.into_plain_array::<f32>()?),
        DatumType::F64 => IwTensor::F64(tensor.into_plain_array::<f64>()?),
        DatumType::I64 => IwTensor::I64(tensor.into_plain_array::<i64>()?),
        DatumType::I32 => IwTensor::I32(tensor.into_plain_array::<i32>()?),
        DatumType::U8 => IwTensor::U8(tensor.into_plain_array::<u8>()?),
        DatumType::Bool => IwTensor::Bool(tensor.into_plain_array::<bool>()?),
        other => {
            let converted = tensor.cast_to::<f32>().map_err(|e| {
                e.context(format!("output of type {other:?} cannot be converted to float32"))
            })?;
            IwTensor::F32(converted.into_owned().into_plain_array::<f32>()?)
        }
    })
}

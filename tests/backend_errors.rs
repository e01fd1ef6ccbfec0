//! Bad models and bad inputs give the same kind of [`SessionError`] on tract and on ONNX
//! Runtime, and ONNX Runtime options that cannot be honoured fail at load.

use std::path::{Path, PathBuf};

use inferwatch::session::{ExecutionProvider, OrtOptions, load_backend};
use inferwatch::{
    BackendKind, InstrumentedSession, Recorder, SessionError, SessionOptions, Tensor, TensorMap,
    WindowConfig, npy,
};
use prost::Message;

const BACKENDS: [BackendKind; 2] = [BackendKind::Tract, BackendKind::Ort];

fn model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(name).join("model.onnx")
}

fn options(kind: BackendKind) -> SessionOptions {
    SessionOptions { backend: kind, ..SessionOptions::default() }
}

fn load_error(kind: BackendKind, path: &Path) -> SessionError {
    match load_backend(path, &options(kind)) {
        Ok(_) => panic!("the {kind} backend loaded {}", path.display()),
        Err(error) => error,
    }
}

/// Loads the Silero VAD model, whose inputs are `input` float32 [1,576] and `state` float32
/// [2,1,128].
fn silero(kind: BackendKind) -> InstrumentedSession {
    let backend = load_backend(model("silero-vad"), &options(kind))
        .unwrap_or_else(|e| panic!("the {kind} backend failed to load silero-vad: {e}"));
    InstrumentedSession::new(backend, Recorder::new(WindowConfig::default()))
}

fn silero_inputs() -> TensorMap {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/silero-vad");
    [
        ("input", npy::read_npy(dir.join("speech.npy")).unwrap()),
        ("state", npy::read_npy(dir.join("speech_state.npy")).unwrap()),
    ]
    .into_iter()
    .collect()
}

#[test]
fn missing_model_is_read_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.onnx");
    for kind in BACKENDS {
        let error = load_error(kind, &path);
        assert!(
            matches!(&error, SessionError::ReadModel { path: p, .. } if *p == path),
            "{kind}: {error}"
        );
    }
}

#[test]
fn text_file_is_not_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.onnx");
    std::fs::write(&path, "this is a text file, not a model\n").unwrap();
    for kind in BACKENDS {
        let error = load_error(kind, &path);
        assert!(matches!(error, SessionError::NotOnnx { .. }), "{kind}: {error}");
    }
}

#[test]
fn truncated_model_is_not_onnx() {
    let bytes = std::fs::read(model("ppocr-cls")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("half.onnx");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    for kind in BACKENDS {
        let error = load_error(kind, &path);
        assert!(matches!(error, SessionError::NotOnnx { .. }), "{kind}: {error}");
    }
}

#[test]
fn unknown_operator_is_unsupported() {
    // The classifier with its first Conv renamed to an operator that exists nowhere.
    let bytes = std::fs::read(model("ppocr-cls")).unwrap();
    let mut proto = tract_onnx::pb::ModelProto::decode(bytes.as_slice()).unwrap();
    let graph = proto.graph.as_mut().unwrap();
    let node = graph.node.iter_mut().find(|node| node.op_type == "Conv").unwrap();
    node.op_type = "NoSuchOp".to_owned();
    let node_name = node.name.clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unknown-op.onnx");
    std::fs::write(&path, proto.encode_to_vec()).unwrap();
    for kind in BACKENDS {
        // tract needs a concrete input shape before it looks at the operators.
        let mut options = options(kind);
        options.input_shapes.insert("x".to_owned(), vec![1, 3, 48, 192]);
        let error = load_backend(&path, &options).map(|_| ()).unwrap_err();
        let SessionError::UnsupportedOperator { op, node, backend, .. } = &error else {
            panic!("{kind}: {error}");
        };
        assert_eq!(op, "NoSuchOp", "{kind}");
        assert_eq!(node, &node_name, "{kind}");
        assert_eq!(*backend, kind.as_str());
    }
}

#[test]
fn unknown_input_name_is_rejected() {
    for kind in BACKENDS {
        let mut inputs = silero_inputs();
        inputs.insert("sr", Tensor::I64(ndarray::arr0(16000i64).into_dyn()));
        let error = silero(kind).run(inputs).unwrap_err();
        assert!(
            matches!(&error, SessionError::UnknownInput { name, .. } if name == "sr"),
            "{kind}: {error}"
        );
    }
}

#[test]
fn missing_input_is_rejected() {
    for kind in BACKENDS {
        let mut inputs = silero_inputs();
        inputs.remove("state");
        let error = silero(kind).run(inputs).unwrap_err();
        let SessionError::MissingInput { name, expected } = &error else {
            panic!("{kind}: {error}");
        };
        assert_eq!(name, "state");
        assert_eq!(expected, "float32[2,1,128]");
    }
}

#[test]
fn wrong_element_type_is_rejected() {
    for kind in BACKENDS {
        let mut inputs = silero_inputs();
        inputs.insert("state", Tensor::F64(ndarray::ArrayD::zeros(vec![2, 1, 128])));
        let error = silero(kind).run(inputs).unwrap_err();
        let SessionError::WrongType { name, expected, actual } = &error else {
            panic!("{kind}: {error}");
        };
        assert_eq!(
            (name.as_str(), expected.as_str(), actual.as_str()),
            ("state", "float32", "float64")
        );
    }
}

#[test]
fn wrong_shape_is_rejected() {
    for kind in BACKENDS {
        let mut inputs = silero_inputs();
        inputs.insert("input", Tensor::F32(ndarray::ArrayD::zeros(vec![1, 512])));
        let error = silero(kind).run(inputs).unwrap_err();
        let SessionError::WrongShape { name, expected, actual } = &error else {
            panic!("{kind}: {error}");
        };
        assert_eq!(
            (name.as_str(), expected.as_str(), actual.as_str()),
            ("input", "[1,576]", "[1,512]")
        );
    }
}

#[test]
fn cuda_without_gpu_build_fails_at_load() {
    // The CPU build of ONNX Runtime from PyPI has no CUDA execution provider: asking for it
    // must fail rather than run on the CPU.
    let options = SessionOptions {
        backend: BackendKind::Ort,
        ort: OrtOptions::default().execution_provider(ExecutionProvider::Cuda),
        ..SessionOptions::default()
    };
    let path = model("ppocr-cls");
    let error = load_backend(&path, &options).map(|_| ()).unwrap_err();
    let SessionError::ExecutionProvider { provider, detail, .. } = &error else {
        panic!("{error}");
    };
    assert_eq!(*provider, "CUDA");
    assert!(detail.contains("CUDA"), "{detail}");
    assert!(error.to_string().contains("--ep cpu"), "{error}");
}

/// Returns a one-node model: `y = op(x)` on one-element tensors of ONNX element type
/// `elem_type`, at opset 13.
fn one_node_model(op: &str, node_name: &str, elem_type: i32) -> Vec<u8> {
    use tract_onnx::pb::{
        GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto,
        ValueInfoProto, tensor_shape_proto, type_proto,
    };
    let value = |name: &str| ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type,
                shape: Some(TensorShapeProto {
                    dim: vec![tensor_shape_proto::Dimension {
                        value: Some(tensor_shape_proto::dimension::Value::DimValue(1)),
                        ..Default::default()
                    }],
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let node = NodeProto {
        input: vec!["x".to_owned()],
        output: vec!["y".to_owned()],
        name: node_name.to_owned(),
        op_type: op.to_owned(),
        ..Default::default()
    };
    let graph = GraphProto {
        node: vec![node],
        name: "one-node".to_owned(),
        input: vec![value("x")],
        output: vec![value("y")],
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 13 }],
        graph: Some(graph),
        ..Default::default()
    };
    model.encode_to_vec()
}

#[test]
fn operator_without_cpu_kernel_is_unsupported() {
    // ONNX defines Tan for float64, but ONNX Runtime 1.31.1's CPU provider has a float32
    // kernel only.
    const DOUBLE: i32 = 11;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tan-double.onnx");
    std::fs::write(&path, one_node_model("Tan", "tangent", DOUBLE)).unwrap();
    let error = load_error(BackendKind::Ort, &path);
    let SessionError::UnsupportedOperator { op, node, .. } = &error else {
        panic!("{error}");
    };
    assert_eq!(op, "Tan");
    assert_eq!(node, "tangent");
    assert!(!error.to_string().contains("--backend ort"), "{error}");
}

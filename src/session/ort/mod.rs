//! The ONNX Runtime backend, loaded from `libonnxruntime` at run time.

mod convert;
mod library;
mod pool;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use ort::ep;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, PrepackedWeights};
use serde::Deserialize;

use self::library::Runtime;
use self::pool::SessionPool;
use super::backend::{Backend, SessionOptions};
use super::tensor::{Tensor, TensorInfo, shape_string};
use crate::error::SessionError;

const NAME: &str = "ort";

/// Options of the ONNX Runtime backend.
///
/// In a TOML configuration file the keys are the field names, such as
/// `execution_provider = "cuda"` or `optimization = "basic"`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrtOptions {
    /// Path of `libonnxruntime.so`. When unset, the library is found through
    /// `ORT_DYLIB_PATH`, then the `onnxruntime` Python package (a `.venv` in the current
    /// directory or a parent, `VIRTUAL_ENV`, or `python3`), then the system search path.
    pub library: Option<PathBuf>,
    /// The execution provider that runs the model.
    pub execution_provider: ExecutionProvider,
    /// Threads each session uses inside one operator; `None` means 1. The inference runs on
    /// the calling thread plus `intra_threads - 1` threads of the session's own pool, and 0
    /// lets ONNX Runtime choose (one thread per physical core).
    pub intra_threads: Option<usize>,
    /// The graph optimizations applied when a session is created.
    pub optimization: OptimizationLevel,
    /// The number of sessions kept for concurrent runs. `Some(n)` creates all `n` at load, so
    /// that no timed run pays for creating one (0 counts as 1). `None` creates one at load and
    /// more on demand, up to the number of CPUs this process may use.
    pub pool_size: Option<usize>,
}

impl OrtOptions {
    /// Sets the library path.
    pub fn library(mut self, path: impl Into<PathBuf>) -> Self {
        self.library = Some(path.into());
        self
    }

    /// Sets the execution provider.
    pub fn execution_provider(mut self, provider: ExecutionProvider) -> Self {
        self.execution_provider = provider;
        self
    }

    /// Sets the threads per session used inside one operator.
    pub fn intra_threads(mut self, threads: usize) -> Self {
        self.intra_threads = Some(threads);
        self
    }

    /// Sets the graph optimization level.
    pub fn optimization(mut self, level: OptimizationLevel) -> Self {
        self.optimization = level;
        self
    }

    /// Sets the maximum number of sessions.
    pub fn pool_size(mut self, sessions: usize) -> Self {
        self.pool_size = Some(sessions);
        self
    }
}

/// The execution provider (device and kernels) that runs the model in ONNX Runtime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ExecutionProvider {
    /// ONNX Runtime's CPU kernels.
    #[default]
    Cpu,
    /// NVIDIA CUDA on device 0. A failed registration is an error
    /// ([`SessionError::ExecutionProvider`]), so the model never falls back to the CPU silently.
    /// Needs the `onnxruntime-gpu` build of the library with CUDA and cuDNN installed.
    Cuda,
}

impl ExecutionProvider {
    /// Returns the name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "cpu",
            ExecutionProvider::Cuda => "cuda",
        }
    }
}

impl fmt::Display for ExecutionProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExecutionProvider {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "cpu" => Ok(ExecutionProvider::Cpu),
            "cuda" => Ok(ExecutionProvider::Cuda),
            _ => Err(format!("unknown execution provider {name:?}: expected cpu or cuda")),
        }
    }
}

/// ONNX Runtime's graph optimization levels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum OptimizationLevel {
    /// No graph optimization.
    Disable,
    /// Constant folding and removal of redundant nodes.
    Basic,
    /// `Basic` plus node fusions.
    Extended,
    /// `Extended` plus memory layout changes.
    Layout,
    /// Every optimization (ONNX Runtime's default).
    #[default]
    All,
}

impl FromStr for OptimizationLevel {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "disable" | "none" => Ok(OptimizationLevel::Disable),
            "basic" => Ok(OptimizationLevel::Basic),
            "extended" => Ok(OptimizationLevel::Extended),
            "layout" => Ok(OptimizationLevel::Layout),
            "all" => Ok(OptimizationLevel::All),
            _ => Err(format!(
                "unknown optimization level {name:?}: expected disable, basic, extended, layout \
                 or all"
            )),
        }
    }
}

impl From<OptimizationLevel> for GraphOptimizationLevel {
    fn from(level: OptimizationLevel) -> Self {
        match level {
            OptimizationLevel::Disable => GraphOptimizationLevel::Disable,
            OptimizationLevel::Basic => GraphOptimizationLevel::Level1,
            OptimizationLevel::Extended => GraphOptimizationLevel::Level2,
            OptimizationLevel::Layout => GraphOptimizationLevel::Level3,
            OptimizationLevel::All => GraphOptimizationLevel::All,
        }
    }
}

/// A model loaded by ONNX Runtime, run from any number of threads through a pool of sessions.
///
/// # Why a pool
///
/// ort's `Session::run` takes `&mut self`: some ONNX Runtime internals (allocators of some
/// execution providers, run statistics) are not safe to use from two threads at once, so one
/// session runs one inference at a time. [`Backend::run`] takes `&self` and is called from
/// many threads. A single session behind a mutex would make every thread wait for the one
/// running; instead the backend keeps idle sessions in a pool. A run checks a session out,
/// runs it without holding any lock, and checks it back in. When no session is idle, the run
/// creates one while the pool is below its maximum ([`OrtOptions::pool_size`]), and otherwise
/// waits for one to be checked in. So each thread that runs the model ends up with a session
/// of its own, up to the maximum. The time a run spends creating or waiting for a session is
/// part of its measured inference time: set `pool_size` to the number of threads to create
/// every session at load.
///
/// All sessions are created from one copy of the model bytes and share ONNX Runtime's
/// container of pre-packed weights, so weights that kernels re-lay out are packed once. Each
/// session still costs memory: with ONNX Runtime 1.31.1 on x86-64, PP-OCRv4 det (a 4.7 MB
/// model) took about 13 MB of resident memory for one session and 9 MB for each further one.
///
/// # Loading
///
/// The first load in a process finds and checks `libonnxruntime` (see [`OrtOptions::library`])
/// and keeps it for the life of the process. The model is read once and a first session is
/// created from it, which also checks the model and gives its input and output names, types
/// and shapes.
pub struct OrtBackend {
    pool: SessionPool,
    factory: SessionFactory,
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
}

impl fmt::Debug for OrtBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrtBackend")
            .field("path", &self.factory.path)
            .field("library", &self.factory.runtime.path)
            .field("execution_provider", &self.factory.options.execution_provider)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

impl OrtBackend {
    /// Loads the model at `path` with the ONNX Runtime options in `options.ort`.
    pub fn load(path: &Path, options: &SessionOptions) -> Result<Self, SessionError> {
        let runtime = library::runtime(options.ort.library.as_deref())?;
        let bytes = std::fs::read(path)
            .map_err(|source| SessionError::ReadModel { path: path.to_owned(), source })?;
        let factory = SessionFactory {
            runtime,
            path: path.to_owned(),
            bytes: bytes.into(),
            options: options.ort.clone(),
            weights: PrepackedWeights::new(),
        };

        let first = factory.create()?;
        let inputs = first
            .inputs()
            .iter()
            .map(|outlet| convert::tensor_info(path, "input", outlet))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = first
            .outputs()
            .iter()
            .map(|outlet| convert::tensor_info(path, "output", outlet))
            .collect::<Result<Vec<_>, _>>()?;

        // Shapes given for tract's sake must still fit the model.
        for info in &inputs {
            if let Some(shape) = options.input_shapes.get(&info.name)
                && !info.accepts_shape(shape)
            {
                return Err(SessionError::WrongShape {
                    name: info.name.clone(),
                    expected: info.shape_string(),
                    actual: shape_string(shape),
                });
            }
        }

        let max_sessions = options.ort.pool_size.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        let pool = SessionPool::new(first, max_sessions);
        if options.ort.pool_size.is_some() {
            pool.fill(|| factory.create())?;
        }
        Ok(OrtBackend { pool, factory, inputs, outputs })
    }

    /// Returns the number of sessions created so far (at least 1, at most
    /// [`OrtBackend::max_sessions`]).
    pub fn sessions(&self) -> usize {
        self.pool.sessions()
    }

    /// Returns the maximum number of sessions.
    pub fn max_sessions(&self) -> usize {
        self.pool.max_sessions()
    }

    /// Returns the path of the ONNX Runtime library in use.
    pub fn library_path(&self) -> &Path {
        &self.factory.runtime.path
    }

    /// Returns the version the ONNX Runtime library reports, such as `1.31.1`.
    pub fn library_version(&self) -> &str {
        &self.factory.runtime.version
    }
}

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    fn outputs(&self) -> &[TensorInfo] {
        &self.outputs
    }

    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, SessionError> {
        let run_error = |e: ort::Error| SessionError::Run { backend: NAME, detail: e.to_string() };
        let values = inputs
            .into_iter()
            .map(|tensor| convert::to_value(tensor).map(Into::into))
            .collect::<Result<Vec<ort::session::SessionInputValue<'_>>, _>>()
            .map_err(run_error)?;
        let mut session = self.pool.check_out(|| self.factory.create())?;
        let outputs = session.run(values.as_slice()).map_err(run_error)?;
        outputs
            .iter()
            .zip(&self.outputs)
            .map(|((_, value), info)| convert::from_value(&info.name, &value))
            .collect()
    }
}

/// Everything needed to create another session of the model.
struct SessionFactory {
    runtime: Arc<Runtime>,
    path: PathBuf,
    bytes: Box<[u8]>,
    options: OrtOptions,
    /// Weights that ONNX Runtime has re-laid out for its kernels, shared by all sessions.
    weights: PrepackedWeights,
}

impl SessionFactory {
    fn create(&self) -> Result<Session, SessionError> {
        let path = &self.path;
        let options = &self.options;
        let builder_error = |e: ort::Error<ort::session::builder::SessionBuilder>| {
            SessionError::Load { path: path.clone(), backend: NAME, detail: e.to_string() }
        };
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut builder = Session::builder(&self.runtime.environment)
            .map_err(|e| SessionError::Load {
                path: path.clone(),
                backend: NAME,
                detail: e.to_string(),
            })?
            .with_optimization_level(options.optimization.into())
            .map_err(builder_error)?
            .with_intra_threads(options.intra_threads.unwrap_or(1))
            .map_err(builder_error)?
            .with_prepacked_weights(&self.weights)
            .map_err(builder_error)?
            // The model is created from memory: external weight files are looked up next to
            // the model file, as when loading from the path.
            .with_config_entry(
                "session.model_external_initializers_file_folder_path",
                folder.to_string_lossy(),
            )
            .map_err(builder_error)?;
        if options.execution_provider == ExecutionProvider::Cuda {
            builder = builder
                .with_execution_providers([ep::CUDA::default().build().error_on_failure()])
                .map_err(|e| SessionError::ExecutionProvider {
                    path: path.clone(),
                    provider: "CUDA",
                    detail: e.to_string().trim_end_matches('.').to_owned(),
                })?;
        }
        builder.commit_from_memory(&self.bytes).map_err(|e| convert::classify_load_error(path, &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_read_from_toml() {
        let text = r#"
            library = "/opt/onnxruntime/libonnxruntime.so.1.31.1"
            execution_provider = "cuda"
            intra_threads = 2
            optimization = "basic"
            pool_size = 3
        "#;
        let options: OrtOptions = toml::from_str(text).unwrap();
        let library = PathBuf::from("/opt/onnxruntime/libonnxruntime.so.1.31.1");
        assert_eq!(options.library, Some(library));
        assert_eq!(options.execution_provider, ExecutionProvider::Cuda);
        assert_eq!(options.intra_threads, Some(2));
        assert_eq!(options.optimization, OptimizationLevel::Basic);
        assert_eq!(options.pool_size, Some(3));
    }

    #[test]
    fn options_from_toml_reject_unknown_values() {
        let provider = toml::from_str::<OrtOptions>(r#"execution_provider = "tpu""#);
        assert!(provider.unwrap_err().to_string().contains("tpu"));
        let key = toml::from_str::<OrtOptions>("threads = 2");
        assert!(key.unwrap_err().to_string().contains("threads"));
    }

    #[test]
    fn names_parse_as_flags() {
        assert_eq!("cpu".parse::<ExecutionProvider>(), Ok(ExecutionProvider::Cpu));
        assert_eq!("cuda".parse::<ExecutionProvider>(), Ok(ExecutionProvider::Cuda));
        assert!("gpu".parse::<ExecutionProvider>().unwrap_err().contains("cpu or cuda"));
        assert_eq!("none".parse::<OptimizationLevel>(), Ok(OptimizationLevel::Disable));
        assert_eq!("extended".parse::<OptimizationLevel>(), Ok(OptimizationLevel::Extended));
    }
}

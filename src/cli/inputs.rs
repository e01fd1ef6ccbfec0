//! Finding the inputs for a model: given files, shipped samples, or generated tensors.

use std::path::{Path, PathBuf};

use inferwatch::{SessionOptions, Tensor, TensorInfo, TensorMap, npy};

use super::Failure;

/// Parses `NAME=VALUE` flag values.
pub(crate) fn parse_pair(flag: &str, text: &str) -> Result<(String, String), Failure> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() && !value.is_empty() => {
            Ok((name.to_owned(), value.to_owned()))
        }
        _ => Err(Failure::input(format!("invalid {flag} {text:?}: expected NAME=VALUE"))),
    }
}

/// Where the inputs of a run came from, for the user to see.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InputOrigin {
    Given,
    Sample(Vec<PathBuf>),
    Generated,
}

/// Reads the `--input NAME=FILE.npy` files.
pub(crate) fn read_given(pairs: &[String]) -> Result<TensorMap, Failure> {
    let mut inputs = TensorMap::new();
    for text in pairs {
        let (name, file) = parse_pair("--input", text)?;
        let tensor =
            npy::read_npy(&file).map_err(|e| Failure::input(format!("--input {name}: {e}")))?;
        inputs.insert(name, tensor);
    }
    Ok(inputs)
}

/// Returns the sample inputs shipped next to `model`: `NAME.npy` for each declared input
/// name, when all of them exist.
pub(crate) fn find_samples(
    model: &Path,
    declared: &[TensorInfo],
) -> Result<Option<(TensorMap, Vec<PathBuf>)>, Failure> {
    let dir = model.parent().unwrap_or(Path::new("."));
    let paths: Vec<PathBuf> =
        declared.iter().map(|info| dir.join(format!("{}.npy", info.name))).collect();
    if declared.is_empty() || !paths.iter().all(|path| path.is_file()) {
        return Ok(None);
    }
    let mut inputs = TensorMap::new();
    for (info, path) in declared.iter().zip(&paths) {
        let tensor = npy::read_npy(path).map_err(Failure::input)?;
        inputs.insert(info.name.clone(), tensor);
    }
    Ok(Some((inputs, paths)))
}

/// Returns generated inputs of the declared types and shapes (free dimensions set to 1).
pub(crate) fn generate(declared: &[TensorInfo]) -> TensorMap {
    declared
        .iter()
        .map(|info| (info.name.clone(), Tensor::generated(info.dtype, &info.example_shape())))
        .collect()
}

/// Returns the options for loading `model` with inputs of the shapes in `inputs`.
pub(crate) fn options_for(base: &SessionOptions, inputs: &TensorMap) -> SessionOptions {
    base.clone().with_shapes_of(inputs)
}

//! Configured ONNX Runtime libraries that cannot be used give an error that names the file and
//! the fix, and never a panic.
//!
//! No test here loads a usable library: a process keeps the first ONNX Runtime it loads, so
//! these tests run in a test binary of their own.

use std::path::{Path, PathBuf};

use inferwatch::session::{OrtOptions, load_backend};
use inferwatch::{BackendKind, OrtLibraryError, SessionError, SessionOptions};

/// Where `scripts/deps/20-onnxruntime-old.sh` puts the library of ONNX Runtime 1.20.1.
const OLD_LIBRARY: &str = ".venv/onnxruntime-1.20.1/libonnxruntime.so.1.20.1";

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ppocr-cls/model.onnx")
}

fn library_error(library: &Path) -> OrtLibraryError {
    let options = SessionOptions {
        backend: BackendKind::Ort,
        ort: OrtOptions::default().library(library),
        ..SessionOptions::default()
    };
    match load_backend(model(), &options) {
        Ok(_) => panic!("loaded the model with the library {}", library.display()),
        Err(SessionError::OrtLibrary(error)) => error,
        Err(other) => panic!("expected a library error, got {other}"),
    }
}

/// Returns the path of the C library this process runs on, as the loader mapped it.
fn libc_path() -> PathBuf {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| {
            let name = Path::new(path).file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("libc.so") || name.starts_with("libc-")
        })
        .map(PathBuf::from)
        .expect("no libc in /proc/self/maps")
}

#[test]
fn missing_library_names_path_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libonnxruntime.so.1.31.1");
    let error = library_error(&path);
    assert!(matches!(&error, OrtLibraryError::Missing { path: p, .. } if *p == path), "{error}");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("--ort-lib"), "{message}");
    assert!(message.contains("pip install onnxruntime==1.31.1"), "{message}");
}

#[test]
fn text_file_is_not_a_shared_library() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libonnxruntime.so");
    std::fs::write(&path, "not a library\n").unwrap();
    let error = library_error(&path);
    assert!(matches!(&error, OrtLibraryError::NotSharedLibrary { path: p, .. } if *p == path));
}

#[test]
fn empty_file_is_not_a_shared_library() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libonnxruntime.so");
    std::fs::write(&path, "").unwrap();
    let error = library_error(&path);
    assert!(matches!(error, OrtLibraryError::NotSharedLibrary { .. }), "{error}");
}

#[test]
fn other_library_is_not_onnx_runtime() {
    let libc = libc_path();
    let error = library_error(&libc);
    assert!(matches!(&error, OrtLibraryError::NotOnnxRuntime { path: p, .. } if *p == libc));
    assert!(error.to_string().contains("OrtGetApiBase"), "{error}");
}

#[test]
fn old_release_names_both_versions() {
    let old = Path::new(env!("CARGO_MANIFEST_DIR")).join(OLD_LIBRARY);
    assert!(
        old.is_file(),
        "{} is missing: run scripts/deps/20-onnxruntime-old.sh (scripts/install-deps.sh runs it)",
        old.display()
    );
    let error = library_error(&old);
    let OrtLibraryError::TooOld { found, required, .. } = &error else {
        panic!("expected a version error, got {error}");
    };
    // The version comes from the library itself, through OrtGetApiBase.
    assert_eq!(found, "1.20.1");
    assert_eq!(required, "1.31");
    let message = error.to_string();
    assert!(message.contains("1.20.1"), "{message}");
    assert!(message.contains("1.31 or newer"), "{message}");
}

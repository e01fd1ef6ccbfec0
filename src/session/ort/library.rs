//! Finding, checking and loading `libonnxruntime` at run time.
//!
//! ort's `load-dynamic` feature opens the library on the first ONNX Runtime call, and panics
//! there when no path was configured or the file does not load. This module therefore finds
//! the library itself, opens it once to check that it is ONNX Runtime of a version that the
//! `api-31` feature can call, and only then hands the path to [`ort::init_from`]. Every
//! failure becomes an [`OrtLibraryError`]; no ort call happens before the check succeeds.
//!
//! A process can use only one ONNX Runtime library, because ort keeps the first one it loads
//! and one environment for the whole process. The result is therefore kept in a process-wide
//! slot.

use std::ffi::{CStr, c_void};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};

use ort::environment::Environment;

use crate::error::OrtLibraryError;

/// The ONNX Runtime minor version whose C API this build calls (ort's `api-31` feature).
/// Older releases do not provide that API version.
pub(crate) const REQUIRED_MINOR: u32 = ort::MINOR_VERSION;

/// The variable that names the library, as ort itself reads it.
const ENV_VAR: &str = "ORT_DYLIB_PATH";

/// The library file names of the pip wheel start with this; the wheel ships no unversioned
/// `libonnxruntime.so`.
const VERSIONED_PREFIX: &str = "libonnxruntime.so.1.";

/// Names tried on the dynamic loader's search path when nothing else is found.
const SYSTEM_NAMES: [&str; 2] = ["libonnxruntime.so", "libonnxruntime.so.1"];

/// The origin of an explicit path, in messages.
pub(crate) const CONFIGURED: &str = "configured with --ort-lib or OrtOptions::library";

/// The loaded ONNX Runtime: its library and the process's one environment.
pub(crate) struct Runtime {
    /// The absolute path of the loaded library.
    pub(crate) path: PathBuf,
    /// The version the library reports, such as `1.31.1`.
    pub(crate) version: String,
    pub(crate) environment: Environment,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("path", &self.path)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

static RUNTIME: Mutex<Option<Arc<Runtime>>> = Mutex::new(None);

/// Returns the process's ONNX Runtime, loading it on the first call.
///
/// The library is `explicit` when given, else the first one found by [`locate`]. Once a
/// library is loaded, later calls without `explicit` get it even if the environment has
/// changed since. A later `explicit` path must name the loaded file: any other file fails with
/// [`OrtLibraryError::AlreadyLoaded`] (or `Missing`, `NotSharedLibrary`) without being
/// opened, so a second ONNX Runtime never enters the process.
pub(crate) fn runtime(explicit: Option<&Path>) -> Result<Arc<Runtime>, OrtLibraryError> {
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(runtime) = slot.as_ref() {
        if let Some(requested) = explicit {
            check_elf_header(requested, CONFIGURED)?;
            if !same_file(requested, &runtime.path) {
                return Err(OrtLibraryError::AlreadyLoaded {
                    loaded: runtime.path.clone(),
                    requested: requested.to_owned(),
                });
            }
        }
        return Ok(runtime.clone());
    }
    let (path, origin) = match explicit {
        Some(path) => (path.to_owned(), CONFIGURED.to_owned()),
        None => locate()?,
    };
    let probed = probe(&path, &origin)?;
    let runtime = Arc::new(start(probed)?);
    tracing::debug!(
        path = %runtime.path.display(),
        version = %runtime.version,
        %origin,
        "loaded ONNX Runtime"
    );
    *slot = Some(runtime.clone());
    Ok(runtime)
}

/// Finds the library without an explicit path and returns the path and its origin.
///
/// The search order is `ORT_DYLIB_PATH`, then the `onnxruntime` Python package (in the `.venv`
/// nearest the current directory, in `VIRTUAL_ENV`, or where `python3` imports it from), then
/// the loader's search path. A set `ORT_DYLIB_PATH` is used as given, even when the file is
/// missing, so that the error names it.
fn locate() -> Result<(PathBuf, String), OrtLibraryError> {
    if let Some(path) = std::env::var_os(ENV_VAR).filter(|value| !value.is_empty()) {
        return Ok((PathBuf::from(path), ENV_VAR.to_owned()));
    }
    let mut tried = vec![format!("{ENV_VAR} (not set)")];

    let mut venvs = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        match cwd.ancestors().map(|dir| dir.join(".venv")).find(|venv| venv.is_dir()) {
            Some(venv) => venvs.push((venv, "the .venv nearest the current directory")),
            None => tried.push(format!("a .venv in {} or its parents (none)", cwd.display())),
        }
    }
    match std::env::var_os("VIRTUAL_ENV").filter(|value| !value.is_empty()) {
        Some(venv) => venvs.push((PathBuf::from(venv), "VIRTUAL_ENV")),
        None => tried.push("VIRTUAL_ENV (not set)".to_owned()),
    }
    for (venv, origin) in venvs {
        let found = site_packages(&venv)
            .into_iter()
            .find_map(|site| newest_versioned(&site.join("onnxruntime").join("capi")));
        match found {
            Some(path) => return Ok((path, format!("{origin} {}", venv.display()))),
            None => tried.push(format!(
                "{}/lib/python3*/site-packages/onnxruntime/capi ({origin}; no {VERSIONED_PREFIX}*)",
                venv.display()
            )),
        }
    }

    match python_package_dir() {
        Ok(package) => match newest_versioned(&package.join("capi")) {
            Some(path) => return Ok((path, "the onnxruntime package of python3".to_owned())),
            None => tried.push(format!(
                "{}/capi, where python3 imports onnxruntime from (no {VERSIONED_PREFIX}*)",
                package.display()
            )),
        },
        Err(reason) => tried.push(format!("the onnxruntime package of python3 ({reason})")),
    }

    for name in SYSTEM_NAMES {
        // SAFETY: opening ONNX Runtime runs its initialisers, which have no preconditions. A
        // foreign library of this name would run its own, as any program linked to it would.
        match unsafe { libloading::Library::new(name) } {
            Ok(_) => return Ok((PathBuf::from(name), "the system library search path".to_owned())),
            Err(error) => {
                tried.push(format!(
                    "{name} on the library search path ({})",
                    loader_message(&error)
                ));
            }
        }
    }
    Err(OrtLibraryError::NotFound { tried })
}

/// Returns the `site-packages` folders of a virtual environment.
fn site_packages(venv: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(venv.join("lib")) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("python3"))
        .map(|entry| entry.path().join("site-packages"))
        .filter(|site| site.is_dir())
        .collect();
    found.sort();
    found
}

/// Returns the `libonnxruntime.so.1.*` in `dir` with the highest version.
fn newest_versioned(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version = parse_version(name.strip_prefix("libonnxruntime.so.")?)?;
            Some((version, entry.path()))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, path)| path)
}

/// Asks `python3` for the folder it imports `onnxruntime` from. The error is the reason it
/// could not, for the list of places tried.
fn python_package_dir() -> Result<PathBuf, String> {
    let output = Command::new("python3")
        .args(["-c", "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))"])
        .output()
        .map_err(|e| format!("failed to run python3: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("no message").trim().to_owned();
        return Err(format!("python3 failed to import onnxruntime: {last}"));
    }
    let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if dir.is_empty() {
        return Err("python3 printed no package folder".to_owned());
    }
    Ok(PathBuf::from(dir))
}

/// A library that was opened and checked.
#[derive(Debug)]
pub(crate) struct Probed {
    /// The absolute path of the file the loader opened.
    pub(crate) path: PathBuf,
    /// The version the library reports.
    pub(crate) version: String,
    /// Keeps the library open until ort has opened it too.
    _library: libloading::Library,
}

/// Opens the library at `path` and checks that it is ONNX Runtime of a version this build can
/// call. A `path` without a slash is looked up on the loader's search path.
pub(crate) fn probe(path: &Path, origin: &str) -> Result<Probed, OrtLibraryError> {
    let on_search_path = !path.as_os_str().as_encoded_bytes().contains(&b'/');
    if !on_search_path {
        check_elf_header(path, origin)?;
    }
    let open_error = |detail: String| OrtLibraryError::Open {
        path: path.to_owned(),
        origin: origin.to_owned(),
        detail,
    };
    // SAFETY: opening ONNX Runtime runs its initialisers, which have no preconditions. Another
    // library runs its own initialisers, which is inherent to loading a file the user named.
    // The ELF check above rules out files that are not libraries at all.
    let library =
        unsafe { libloading::Library::new(path) }.map_err(|e| open_error(loader_message(&e)))?;
    let not_onnx_runtime =
        || OrtLibraryError::NotOnnxRuntime { path: path.to_owned(), origin: origin.to_owned() };

    type GetApiBase = unsafe extern "C" fn() -> *const ort::sys::OrtApiBase;
    // SAFETY: `OrtGetApiBase` has this signature in every ONNX Runtime release (ort-sys binds
    // it so). A foreign library without the symbol makes `get` fail instead.
    let get_api_base =
        unsafe { library.get::<GetApiBase>(b"OrtGetApiBase") }.map_err(|_| not_onnx_runtime())?;
    // SAFETY: the function takes no arguments and returns a pointer to a static table.
    let api_base = unsafe { get_api_base() };
    if api_base.is_null() {
        return Err(not_onnx_runtime());
    }
    // SAFETY: `api_base` is non-null and points to the library's static `OrtApiBase`, whose
    // `GetVersionString` returns a static, NUL-terminated string.
    let version = unsafe {
        let text = ((*api_base).GetVersionString)();
        if text.is_null() {
            return Err(not_onnx_runtime());
        }
        CStr::from_ptr(text).to_string_lossy().into_owned()
    };
    let too_old = || OrtLibraryError::TooOld {
        path: path.to_owned(),
        origin: origin.to_owned(),
        found: version.clone(),
        required: format!("1.{REQUIRED_MINOR}"),
    };
    if !version_supported(&version) {
        return Err(too_old());
    }
    // SAFETY: as above. `GetApi` returns null for an API version the library lacks. ort would
    // panic on that null at its first call, so it is checked here first.
    let api = unsafe { ((*api_base).GetApi)(REQUIRED_MINOR) };
    if api.is_null() {
        return Err(too_old());
    }
    let path = if on_search_path {
        loaded_file(*get_api_base as *const c_void).unwrap_or_else(|| path.to_owned())
    } else {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
    };
    Ok(Probed { path, version, _library: library })
}

/// Fails unless `path` exists and starts with the ELF magic number.
fn check_elf_header(path: &Path, origin: &str) -> Result<(), OrtLibraryError> {
    let mut file = File::open(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => {
            OrtLibraryError::Missing { path: path.to_owned(), origin: origin.to_owned() }
        }
        _ => OrtLibraryError::Open {
            path: path.to_owned(),
            origin: origin.to_owned(),
            detail: error.to_string(),
        },
    })?;
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() || magic != *b"\x7fELF" {
        return Err(OrtLibraryError::NotSharedLibrary {
            path: path.to_owned(),
            origin: origin.to_owned(),
        });
    }
    Ok(())
}

/// Returns the dynamic loader's own message, because libloading's `Display` prints only
/// "dlopen failed".
fn loader_message(error: &libloading::Error) -> String {
    use std::error::Error as _;
    error.source().map_or_else(|| error.to_string(), |source| source.to_string())
}

/// Returns the file the loader mapped the code at `address` from.
fn loaded_file(address: *const c_void) -> Option<PathBuf> {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: `dladdr` only reads `address` as a number and fills `info`. It returns 0 when
    // the address belongs to no loaded object.
    let found = unsafe { libc::dladdr(address, info.as_mut_ptr()) };
    if found == 0 {
        return None;
    }
    // SAFETY: `dladdr` succeeded, so it initialised `info`. `dli_fname` is null or points to
    // the loader's NUL-terminated copy of the object's path.
    let name = unsafe { info.assume_init().dli_fname };
    if name.is_null() {
        return None;
    }
    // SAFETY: checked non-null above, and the loader keeps the string while the object is
    // loaded.
    let text = unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned();
    Some(PathBuf::from(text))
}

/// Hands the checked library to ort and creates the process's environment.
fn start(probed: Probed) -> Result<Runtime, OrtLibraryError> {
    let start_error = |detail: String| OrtLibraryError::Start { path: probed.path.clone(), detail };
    let builder = ort::init_from(&probed.path).map_err(|e| start_error(e.to_string()))?;
    let environment = builder
        .with_name("inferwatch")
        .with_telemetry(false)
        .build()
        .map_err(|e| start_error(e.to_string()))?;
    Ok(Runtime { path: probed.path, version: probed.version, environment })
}

/// Returns true when `version` (such as `1.31.1`) is 1.x with x at least the required minor.
pub(crate) fn version_supported(version: &str) -> bool {
    parse_version(version).is_some_and(|(major, minor, _)| {
        major > 1 || (major == 1 && minor >= u64::from(REQUIRED_MINOR))
    })
}

/// Parses `major.minor.patch` (the patch may be missing or carry a suffix such as `-dev`).
fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts
        .next()
        .map(|p| p.chars().take_while(char::is_ascii_digit).collect::<String>())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0);
    Some((major, minor, patch))
}

/// Returns true when both paths lead to one file (same device and inode).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_check_accepts_required_and_newer() {
        assert!(version_supported("1.31.1"));
        assert!(version_supported("1.31.0"));
        assert!(version_supported("1.32.0-dev"));
        assert!(version_supported("2.0.0"));
    }

    #[test]
    fn version_check_rejects_older_and_malformed() {
        assert!(!version_supported("1.20.1"));
        assert!(!version_supported("1.30.2"));
        assert!(!version_supported("0.99.0"));
        assert!(!version_supported(""));
        assert!(!version_supported("one.two"));
    }

    #[test]
    fn newest_versioned_picks_highest_version() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["libonnxruntime.so.1.9.0", "libonnxruntime.so.1.31.1", "libonnxruntime.so"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let found = newest_versioned(dir.path()).unwrap();
        assert_eq!(found.file_name().unwrap(), "libonnxruntime.so.1.31.1");
    }
}

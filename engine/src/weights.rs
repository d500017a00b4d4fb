//! Loading weights, with every tensor's name and shape checked against the architecture the config
//! describes, from any [`TensorSource`]: safetensors bytes in memory (the browser), or natively the files of
//! a model folder read one tensor at a time (`crate::checkpoint`).
//!
//! Model code asks a [`WeightStore`] for each tensor by name and expected shape, in torch layout (`Linear`
//! weights `[out, in]`, convolutions `[out, in, kh, kw]`); the store records every problem instead of
//! stopping at the first, and [`WeightStore::finish`] reports them all, together with any tensor the
//! architecture never asked for.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

/// One thing wrong with one tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TensorProblem {
    Missing {
        name: String,
        expected: Vec<usize>,
    },
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    Unexpected {
        name: String,
        found: Vec<usize>,
    },
    Dtype {
        name: String,
        dtype: String,
    },
    /// The file holding the tensor could not be read (truncated, corrupt, gone): `reason` names the file.
    Unreadable {
        name: String,
        reason: String,
    },
}

impl fmt::Display for TensorProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TensorProblem::Missing { name, expected } => {
                write!(
                    f,
                    "tensor `{name}` is missing (the architecture needs shape {expected:?})"
                )
            }
            TensorProblem::Shape {
                name,
                expected,
                found,
            } => {
                write!(
                    f,
                    "tensor `{name}` has shape {found:?}, the architecture needs {expected:?}"
                )
            }
            TensorProblem::Unexpected { name, found } => {
                write!(
                    f,
                    "tensor `{name}` {found:?} is not part of this architecture"
                )
            }
            TensorProblem::Dtype { name, dtype } => {
                write!(
                    f,
                    "tensor `{name}` is stored as {dtype}; only F32, F16 and BF16 can be loaded"
                )
            }
            TensorProblem::Unreadable { name, reason } => {
                write!(f, "tensor `{name}` cannot be read: {reason}")
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error(
        "the weights file is not valid safetensors ({0}); it may be truncated or corrupt: download it again"
    )]
    Corrupt(String),
    #[error("cannot read the weights file {path}: {reason}")]
    File { path: String, reason: String },
    #[error(
        "the weights file's sha256 is {found}, but {expected} was expected: the file is corrupt or not this model's; download it again"
    )]
    Checksum { expected: String, found: String },
    #[error("the weights do not match the config: {}", summarize(.0))]
    Mismatch(Vec<TensorProblem>),
    #[error("the weights hold {count} tensors; a checkpoint may hold at most {limit}")]
    TooManyTensors { count: usize, limit: usize },
    #[error(
        "the weights' tensors take {bytes} bytes; this build loads at most {limit} bytes of weights"
    )]
    TooLarge { bytes: u64, limit: u64 },
}

/// Most tensors a checkpoint may hold (Janus-Pro-1B's whole checkpoint has about 1 000).
pub const MAX_TENSORS: usize = 1 << 16;

/// Most bytes of tensor data a checkpoint may declare: what a 32-bit target can address at all, and far
/// beyond any model the engine runs natively.
pub const MAX_WEIGHT_BYTES: u64 = if cfg!(target_pointer_width = "32") {
    u32::MAX as u64
} else {
    1 << 40
};

/// Every problem `source`'s header shows, before any tensor is read: more tensors or bytes than the caps,
/// and each tensor of `architecture` (checkpoint names → shapes) missing, misshapen or of a dtype the
/// engine cannot load, and each tensor it does not name (except those `unused` says the family never
/// reads).
pub fn check_header(
    source: &dyn TensorSource,
    architecture: &BTreeMap<String, Vec<usize>>,
    unused: fn(&str) -> bool,
    device: &Device,
) -> Result<(), WeightsError> {
    let names = source.names();
    if names.len() > MAX_TENSORS {
        return Err(WeightsError::TooManyTensors {
            count: names.len(),
            limit: MAX_TENSORS,
        });
    }
    // u64 and saturating: declared sizes are untrusted and must not wrap on wasm32.
    let bytes = names
        .iter()
        .filter_map(|name| source.info(name))
        .map(|(dtype, shape)| {
            let bits = shape
                .iter()
                .fold(dtype.bitsize() as u64, |n, &d| n.saturating_mul(d as u64));
            bits.div_ceil(8)
        })
        .fold(0u64, u64::saturating_add);
    if bytes > MAX_WEIGHT_BYTES {
        return Err(WeightsError::TooLarge {
            bytes,
            limit: MAX_WEIGHT_BYTES,
        });
    }
    // The architecture's names are already the checkpoint's.
    let table = KeyTable {
        checkpoint_name: str::to_string,
        unused,
    };
    let mut store = WeightStore::new(source, table, device);
    for (name, shape) in architecture {
        store.check(name, shape);
    }
    store.finish()
}

fn summarize(problems: &[TensorProblem]) -> String {
    let shown: Vec<String> = problems.iter().take(3).map(ToString::to_string).collect();
    match problems.len() {
        n if n > 3 => format!("{} (and {} more)", shown.join("; "), n - 3),
        _ => shown.join("; "),
    }
}

/// Named f32 tensors: name → (shape, values).
pub type TensorMap = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// How a family's checkpoints name the tensors the engine asks for: the engine's name → the file's, and
/// which of the file's tensors the image half never reads (skipped without being decoded).
#[derive(Clone, Copy, Debug)]
pub struct KeyTable {
    pub checkpoint_name: fn(&str) -> String,
    pub unused: fn(&str) -> bool,
}

impl KeyTable {
    /// Tessera's own checkpoints: the names of `trainer/tessera_ref.py`, every tensor used.
    pub const TESSERA: KeyTable = KeyTable {
        checkpoint_name: str::to_string,
        unused: |_| false,
    };
}

/// Where a checkpoint's tensors are read from: one safetensors file's bytes in memory, or natively the
/// files of a model folder (`crate::checkpoint`), which are read one tensor at a time.
pub trait TensorSource {
    /// Every tensor's name.
    fn names(&self) -> Vec<String>;
    /// A tensor's dtype and shape, without reading it.
    fn info(&self, name: &str) -> Option<(Dtype, Vec<usize>)>;
    /// A tensor's values: row-major, little-endian bytes of its dtype. An error names the file.
    fn read(&self, name: &str) -> Result<Cow<'_, [u8]>, String>;
}

impl TensorSource for SafeTensors<'_> {
    fn names(&self) -> Vec<String> {
        SafeTensors::names(self)
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    fn info(&self, name: &str) -> Option<(Dtype, Vec<usize>)> {
        let view = self.tensor(name).ok()?;
        Some((view.dtype(), view.shape().to_vec()))
    }

    fn read(&self, name: &str) -> Result<Cow<'_, [u8]>, String> {
        self.tensor(name)
            .map(|view| Cow::Borrowed(view.data()))
            .map_err(|e| e.to_string())
    }
}

/// Parse safetensors bytes (a whole file) as a [`TensorSource`].
pub fn safetensors_source(bytes: &[u8]) -> Result<SafeTensors<'_>, WeightsError> {
    SafeTensors::deserialize(bytes).map_err(|e| WeightsError::Corrupt(e.to_string()))
}

/// A checkpoint's tensors, handed out by name to the model code that builds modules, each read and decoded
/// when it is asked for (a tensor nobody asks for is never read), so loading holds one tensor's bytes at a
/// time besides the model being built.
pub struct WeightStore<'a> {
    /// `None` when probing an architecture's names.
    source: Option<&'a dyn TensorSource>,
    keys: KeyTable,
    taken: BTreeSet<String>,
    problems: Vec<TensorProblem>,
    /// Values of the tensors handed out so far.
    parameters: usize,
    device: Device,
}

impl<'a> WeightStore<'a> {
    /// The tensors of `source`, named as `keys` says; per-tensor problems are reported by
    /// [`WeightStore::finish`].
    pub fn new(source: &'a dyn TensorSource, keys: KeyTable, device: &Device) -> Self {
        Self::with_source(Some(source), keys, device)
    }

    fn with_source(source: Option<&'a dyn TensorSource>, keys: KeyTable, device: &Device) -> Self {
        WeightStore {
            source,
            keys,
            taken: BTreeSet::new(),
            problems: Vec::new(),
            parameters: 0,
            device: device.clone(),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether this store only records the names and shapes asked for ([`probe_names`]): it then hands out
    /// 1-element placeholders, so probing even a 1.5 G-parameter architecture allocates nothing of size.
    pub fn probing(&self) -> bool {
        self.source.is_none()
    }

    /// Values of the tensors handed out so far.
    pub fn parameters(&self) -> usize {
        self.parameters
    }

    /// The tensor `name`, checked to have `shape`. On a problem, records it and returns zeros so building
    /// can go on and every problem is found in one pass.
    pub fn tensor<const D: usize>(&mut self, name: &str, shape: [usize; D]) -> Tensor<D> {
        if self.probing() {
            self.check(name, &shape);
            return Tensor::zeros([1; D], &self.device);
        }
        let values = self.values(name, &shape);
        Tensor::from_data(TensorData::new(values, shape), &self.device)
    }

    /// The 2-D tensor `name`, checked to have `shape` = `[rows, cols]`, returned transposed (`[cols, rows]`)
    /// and contiguous.
    pub fn tensor_transposed(&mut self, name: &str, shape: [usize; 2]) -> Tensor<2> {
        if self.probing() {
            self.check(name, &shape);
            return Tensor::zeros([1, 1], &self.device);
        }
        let [rows, cols] = shape;
        let mut t = vec![0.0; rows * cols];
        if let Some(Stored { dtype, bytes }) = self.stored(name, &shape) {
            let values = decode(dtype, &bytes);
            for r in 0..rows {
                for c in 0..cols {
                    t[c * rows + r] = values[r * cols + c];
                }
            }
        }
        Tensor::from_data(TensorData::new(t, [cols, rows]), &self.device)
    }

    /// The values of the engine's tensor `name`, checked to have `shape`, decoded to f32; zeros (and a
    /// recorded problem) where it cannot be had.
    pub fn values(&mut self, name: &str, shape: &[usize]) -> Vec<f32> {
        match self.stored(name, shape) {
            Some(Stored { dtype, bytes }) => decode(dtype, &bytes),
            None => vec![0.0; shape.iter().product()],
        }
    }

    /// The engine's tensor `name` (the checkpoint's name for it from the key table) as stored, checked to
    /// have `shape` and a float dtype; `None` after recording the problem.
    pub fn stored(&mut self, name: &str, shape: &[usize]) -> Option<Stored<'a>> {
        let (name, dtype) = self.check(name, shape)?;
        let source = self.source?;
        match source.read(&name) {
            Ok(bytes) => Some(Stored { dtype, bytes }),
            Err(reason) => {
                self.problems
                    .push(TensorProblem::Unreadable { name, reason });
                None
            }
        }
    }

    /// What [`WeightStore::stored`] checks, without reading the tensor: its checkpoint name and dtype, or
    /// `None` after recording the problem.
    pub fn check(&mut self, name: &str, shape: &[usize]) -> Option<(String, Dtype)> {
        let name = (self.keys.checkpoint_name)(name);
        self.taken.insert(name.clone());
        let problem = match self.source.and_then(|s| s.info(&name)) {
            None => TensorProblem::Missing {
                name,
                expected: shape.to_vec(),
            },
            Some((_, found)) if found != shape => TensorProblem::Shape {
                name,
                expected: shape.to_vec(),
                found,
            },
            Some((dtype, _)) if !matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) => {
                TensorProblem::Dtype {
                    name,
                    dtype: format!("{dtype:?}"),
                }
            }
            Some((dtype, _)) => {
                self.parameters += shape.iter().product::<usize>();
                return Some((name, dtype));
            }
        };
        self.problems.push(problem);
        None
    }

    /// All problems found while building, plus tensors the architecture never asked for (except those the
    /// key table says the image half never reads).
    pub fn finish(mut self) -> Result<(), WeightsError> {
        if let Some(source) = self.source {
            let mut names = source.names();
            names.sort();
            for name in names {
                if !self.taken.contains(&name) && !(self.keys.unused)(&name) {
                    let found = source.info(&name).map(|(_, shape)| shape);
                    self.problems.push(TensorProblem::Unexpected {
                        name,
                        found: found.unwrap_or_default(),
                    });
                }
            }
        }
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(WeightsError::Mismatch(self.problems))
        }
    }
}

/// A tensor as its checkpoint stores it: F32, F16 or BF16, little-endian.
pub struct Stored<'a> {
    pub dtype: Dtype,
    pub bytes: Cow<'a, [u8]>,
}

/// Little-endian F32, F16 or BF16 bytes → f32 values (the store hands out no other dtype).
pub fn decode(dtype: Dtype, data: &[u8]) -> Vec<f32> {
    match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => unreachable!("the store refuses {other:?} tensors"),
    }
}

/// The 16-bit or 32-bit float format `tessera convert --dtype` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatFormat {
    F32,
    F16,
    Bf16,
}

/// `values` in `format`, little-endian; an f16 that cannot hold a value is refused by tensor name.
pub fn encode(name: &str, values: &[f32], format: FloatFormat) -> crate::Result<(Dtype, Vec<u8>)> {
    Ok(match format {
        FloatFormat::F32 => (
            Dtype::F32,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        FloatFormat::Bf16 => (
            Dtype::BF16,
            values
                .iter()
                .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                .collect(),
        ),
        FloatFormat::F16 => {
            if let Some(v) = values
                .iter()
                .find(|v| v.is_finite() && !half::f16::from_f32(**v).is_finite())
            {
                return Err(crate::TesseraError::Config(format!(
                    "tensor `{name}` holds {v}, beyond f16's range (±65504): keep it as bf16 or f32"
                )));
            }
            (
                Dtype::F16,
                values
                    .iter()
                    .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                    .collect(),
            )
        }
    })
}

/// Records the checkpoint name (under `keys`) and shape of every tensor a builder asks for.
pub fn probe_names(
    device: &Device,
    keys: KeyTable,
    build: impl FnOnce(&mut WeightStore),
) -> BTreeMap<String, Vec<usize>> {
    let mut store = WeightStore::with_source(None, keys, device);
    build(&mut store);
    store
        .problems
        .into_iter()
        .filter_map(|p| match p {
            TensorProblem::Missing { name, expected } => Some((name, expected)),
            _ => None,
        })
        .collect()
}

/// Serialise f32 tensors (name → shape, values) as safetensors: how random test models and the untrained
/// stand-in are made, so they load through the same checked path as real weights.
pub fn to_safetensors(tensors: &TensorMap) -> Vec<u8> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, (s, v))| {
            (
                n.clone(),
                s.clone(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None).expect("in-memory serialisation cannot fail")
}

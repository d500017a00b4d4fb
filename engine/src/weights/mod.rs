//! Loading weights, with every tensor's name and shape checked against the architecture the config
//! describes, from any [`TensorSource`]: natively the files of a model folder read one tensor at a time
//! (`crate::checkpoint`), bytes as they arrive ([`stream`]: the browser, and whole files in memory), or a
//! parsed safetensors buffer.
//!
//! Model code asks a [`WeightStore`] for each tensor by name and expected shape, in torch layout (`Linear`
//! weights `[out, in]`, convolutions `[out, in, kh, kw]`); the store records every problem instead of
//! stopping at the first, and [`WeightStore::finish`] reports them all, together with any tensor the
//! architecture never asked for. Bytes that arrive a piece at a time (the browser's downloads) go through
//! [`stream::StreamedWeights`], which prepares each tensor in the form the build takes it as soon as its bytes
//! are complete, so no whole file is ever held.

pub mod stream;

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

/// What is wrong with the checkpoint's tensor `name` (`found`: its dtype and shape, `None` when absent) where
/// the architecture needs `expected`, if anything.
pub(crate) fn problem(
    name: &str,
    expected: &[usize],
    found: Option<&(Dtype, Vec<usize>)>,
) -> Option<TensorProblem> {
    let name = name.to_string();
    match found {
        None => Some(TensorProblem::Missing {
            name,
            expected: expected.to_vec(),
        }),
        Some((_, found)) if found != expected => Some(TensorProblem::Shape {
            name,
            expected: expected.to_vec(),
            found: found.clone(),
        }),
        Some((dtype, _)) if !matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) => {
            Some(TensorProblem::Dtype {
                name,
                dtype: format!("{dtype:?}"),
            })
        }
        Some(_) => None,
    }
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
    /// The tensor already in the form the build takes it (a streamed load prepares each as it arrives),
    /// handed over once; `None` where it is to be [`read`](TensorSource::read).
    fn take(&self, _name: &str) -> Option<Prepared> {
        None
    }
}

/// How the model's build takes a tensor: recorded when an architecture is probed ([`probe`]), so a streamed
/// load can prepare each tensor that way the moment its bytes are complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// On the model's device, in the checkpoint's layout.
    Device,
    /// On the model's device, a 2-D `[rows, cols]` tensor transposed to `[cols, rows]`.
    DeviceTransposed,
    /// On the host, decoded to f32.
    HostValues,
    /// On the host, as the checkpoint stores it (the CPU kernels pack f16 and bf16 as they are).
    HostStored,
}

/// A tensor prepared the way the build takes it ([`Take`]).
pub enum Prepared {
    /// Flat on the device: the checkpoint's layout, or the transposed one for [`Take::DeviceTransposed`].
    Device(Box<Tensor<1>>),
    HostValues(Vec<f32>),
    HostStored {
        dtype: Dtype,
        bytes: Vec<u8>,
    },
}

impl Prepared {
    /// `bytes` (little-endian `dtype`, checked against `shape` by the caller) prepared as `take` asks.
    pub fn new(take: Take, dtype: Dtype, shape: &[usize], bytes: &[u8], device: &Device) -> Self {
        match take {
            Take::Device => Prepared::device(decode(dtype, bytes), device),
            Take::DeviceTransposed => {
                let [rows, cols] = shape else {
                    unreachable!("only 2-D tensors are taken transposed")
                };
                Prepared::device(transposed(dtype, bytes, *rows, *cols), device)
            }
            Take::HostValues => Prepared::HostValues(decode(dtype, bytes)),
            Take::HostStored => Prepared::HostStored {
                dtype,
                bytes: bytes.to_vec(),
            },
        }
    }

    fn device(values: Vec<f32>, device: &Device) -> Self {
        let n = values.len();
        Prepared::Device(Box::new(Tensor::from_data(
            TensorData::new(values, [n]),
            device,
        )))
    }
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

/// Parse safetensors bytes (a whole file) as a [`TensorSource`] read in place (tests wrap it; models load
/// bytes in memory through [`stream`]).
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
    /// How the build took each tensor (checkpoint names), for [`probe`].
    takes: BTreeMap<String, Take>,
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
            takes: BTreeMap::new(),
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
            self.declare(name, &shape, Take::Device);
            return Tensor::zeros([1; D], &self.device);
        }
        match self.fetch(name, &shape, Take::Device) {
            Some(Fetched::Prepared(Prepared::Device(t))) => t.reshape(shape),
            fetched => {
                let values = self.host_values(name, fetched, &shape);
                Tensor::from_data(TensorData::new(values, shape), &self.device)
            }
        }
    }

    /// The 2-D tensor `name`, checked to have `shape` = `[rows, cols]`, returned transposed (`[cols, rows]`)
    /// and contiguous.
    pub fn tensor_transposed(&mut self, name: &str, shape: [usize; 2]) -> Tensor<2> {
        let [rows, cols] = shape;
        if self.probing() {
            self.declare(name, &shape, Take::DeviceTransposed);
            return Tensor::zeros([1, 1], &self.device);
        }
        let t = match self.fetch(name, &shape, Take::DeviceTransposed) {
            Some(Fetched::Prepared(Prepared::Device(t))) => return t.reshape([cols, rows]),
            Some(Fetched::Stored(Stored { dtype, bytes })) => transposed(dtype, &bytes, rows, cols),
            Some(Fetched::Prepared(other)) => {
                self.wrongly_prepared(name, &other);
                vec![0.0; rows * cols]
            }
            None => vec![0.0; rows * cols],
        };
        Tensor::from_data(TensorData::new(t, [cols, rows]), &self.device)
    }

    /// The values of the engine's tensor `name`, checked to have `shape`, decoded to f32; zeros (and a
    /// recorded problem) where it cannot be had.
    pub fn values(&mut self, name: &str, shape: &[usize]) -> Vec<f32> {
        let fetched = self.fetch(name, shape, Take::HostValues);
        self.host_values(name, fetched, shape)
    }

    /// The engine's tensor `name` (the checkpoint's name for it from the key table) as stored, checked to
    /// have `shape` and a float dtype; `None` after recording the problem.
    pub fn stored(&mut self, name: &str, shape: &[usize]) -> Option<Stored<'a>> {
        match self.fetch(name, shape, Take::HostStored)? {
            Fetched::Stored(stored) => Some(stored),
            Fetched::Prepared(Prepared::HostStored { dtype, bytes }) => Some(Stored {
                dtype,
                bytes: Cow::Owned(bytes),
            }),
            Fetched::Prepared(other) => {
                self.wrongly_prepared(name, &other);
                None
            }
        }
    }

    /// Records, while probing, that the build takes the tensor `name` of `shape` as `take` (for builders that
    /// probe without taking the tensor itself).
    pub fn declare(&mut self, name: &str, shape: &[usize], take: Take) {
        self.takes.insert((self.keys.checkpoint_name)(name), take);
        self.check(name, shape);
    }

    /// The tensor `name`, checked to have `shape`: as its source prepared it, else its stored bytes; `None`
    /// after recording the problem.
    fn fetch(&mut self, name: &str, shape: &[usize], take: Take) -> Option<Fetched<'a>> {
        self.takes.insert((self.keys.checkpoint_name)(name), take);
        let (name, dtype) = self.check(name, shape)?;
        let source = self.source?;
        if let Some(prepared) = source.take(&name) {
            return Some(Fetched::Prepared(prepared));
        }
        match source.read(&name) {
            Ok(bytes) => Some(Fetched::Stored(Stored { dtype, bytes })),
            Err(reason) => {
                self.problems
                    .push(TensorProblem::Unreadable { name, reason });
                None
            }
        }
    }

    /// A fetched tensor's values on the host; zeros where it could not be had.
    fn host_values(&mut self, name: &str, fetched: Option<Fetched>, shape: &[usize]) -> Vec<f32> {
        match fetched {
            Some(Fetched::Stored(Stored { dtype, bytes })) => decode(dtype, &bytes),
            Some(Fetched::Prepared(Prepared::HostValues(values))) => values,
            Some(Fetched::Prepared(Prepared::HostStored { dtype, bytes })) => decode(dtype, &bytes),
            Some(Fetched::Prepared(other)) => {
                self.wrongly_prepared(name, &other);
                vec![0.0; shape.iter().product()]
            }
            None => vec![0.0; shape.iter().product()],
        }
    }

    /// A source prepared `name` otherwise than the build takes it: an engine bug, reported as a problem with
    /// the tensor rather than a panic.
    fn wrongly_prepared(&mut self, name: &str, prepared: &Prepared) {
        let form = match prepared {
            Prepared::Device(_) => "on the device",
            Prepared::HostValues(_) => "as host values",
            Prepared::HostStored { .. } => "as stored bytes",
        };
        self.problems.push(TensorProblem::Unreadable {
            name: (self.keys.checkpoint_name)(name),
            reason: format!("it was prepared {form}, which is not how this model takes it"),
        });
    }

    /// What [`WeightStore::stored`] checks, without reading the tensor: its checkpoint name and dtype, or
    /// `None` after recording the problem.
    pub fn check(&mut self, name: &str, shape: &[usize]) -> Option<(String, Dtype)> {
        let name = (self.keys.checkpoint_name)(name);
        self.taken.insert(name.clone());
        let found = self.source.and_then(|s| s.info(&name));
        match problem(&name, shape, found.as_ref()) {
            Some(problem) => {
                self.problems.push(problem);
                None
            }
            None => {
                self.parameters += shape.iter().product::<usize>();
                Some((name, found.map(|(dtype, _)| dtype)?))
            }
        }
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

/// A tensor as a [`TensorSource`] gives it: prepared, or to be decoded.
enum Fetched<'a> {
    Prepared(Prepared),
    Stored(Stored<'a>),
}

/// `[rows, cols]` little-endian `dtype` bytes → f32 values `[cols, rows]`.
fn transposed(dtype: Dtype, bytes: &[u8], rows: usize, cols: usize) -> Vec<f32> {
    let values = decode(dtype, bytes);
    let mut t = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = values[r * cols + c];
        }
    }
    t
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
    probe(device, keys, build)
        .into_iter()
        .map(|(name, (shape, _))| (name, shape))
        .collect()
}

/// The checkpoint name (under `keys`), shape and [`Take`] of every tensor a builder asks for on `device`.
pub fn probe(
    device: &Device,
    keys: KeyTable,
    build: impl FnOnce(&mut WeightStore),
) -> BTreeMap<String, (Vec<usize>, Take)> {
    let mut store = WeightStore::with_source(None, keys, device);
    build(&mut store);
    let takes = std::mem::take(&mut store.takes);
    store
        .problems
        .into_iter()
        .filter_map(|p| match p {
            TensorProblem::Missing { name, expected } => {
                let take = takes.get(&name).copied().unwrap_or(Take::Device);
                Some((name, (expected, take)))
            }
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

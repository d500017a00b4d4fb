//! Loading weights from safetensors bytes (so the browser and the CLI share one path), with every tensor's
//! name and shape checked against the architecture the config describes.
//!
//! Model code asks a [`WeightStore`] for each tensor by name and expected shape, in torch layout (`Linear`
//! weights `[out, in]`, convolutions `[out, in, kh, kw]`); the store records every problem instead of
//! stopping at the first, and [`WeightStore::finish`] reports them all, together with any tensor the
//! architecture never asked for.

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
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error(
        "the weights file is not valid safetensors ({0}); it may be truncated or corrupt: download it again"
    )]
    Corrupt(String),
    #[error(
        "the weights file's sha256 is {found}, but {expected} was expected: the file is corrupt or not this model's; download it again"
    )]
    Checksum { expected: String, found: String },
    #[error("the weights do not match the config: {}", summarize(.0))]
    Mismatch(Vec<TensorProblem>),
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

/// A checkpoint's tensors, handed out by name to the model code that builds modules and decoded to f32 one
/// at a time as they are asked for (a tensor nobody asks for is never decoded).
pub struct WeightStore<'a> {
    /// `None` when probing an architecture's names.
    file: Option<SafeTensors<'a>>,
    keys: KeyTable,
    taken: BTreeSet<String>,
    problems: Vec<TensorProblem>,
    device: Device,
}

impl<'a> WeightStore<'a> {
    /// Parse safetensors bytes named as `keys` says. Fails only when the file itself is unreadable;
    /// per-tensor problems are reported by [`WeightStore::finish`].
    pub fn from_safetensors(
        bytes: &'a [u8],
        keys: KeyTable,
        device: &Device,
    ) -> Result<Self, WeightsError> {
        let file =
            SafeTensors::deserialize(bytes).map_err(|e| WeightsError::Corrupt(e.to_string()))?;
        Ok(WeightStore {
            file: Some(file),
            keys,
            taken: BTreeSet::new(),
            problems: Vec::new(),
            device: device.clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The tensor `name`, checked to have `shape`. On a problem, records it and returns zeros so building
    /// can go on and every problem is found in one pass.
    pub fn tensor<const D: usize>(&mut self, name: &str, shape: [usize; D]) -> Tensor<D> {
        let values = self.values(name, &shape);
        Tensor::from_data(TensorData::new(values, shape), &self.device)
    }

    /// The 2-D tensor `name`, checked to have `shape` = `[rows, cols]`, returned transposed (`[cols, rows]`)
    /// and contiguous.
    pub fn tensor_transposed(&mut self, name: &str, shape: [usize; 2]) -> Tensor<2> {
        let [rows, cols] = shape;
        let values = self.values(name, &shape);
        let mut t = vec![0.0; values.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = values[r * cols + c];
            }
        }
        Tensor::from_data(TensorData::new(t, [cols, rows]), &self.device)
    }

    /// The values of the engine's tensor `name` (the checkpoint's name for it from the key table), checked
    /// to have `shape`, decoded to f32.
    pub fn values(&mut self, name: &str, shape: &[usize]) -> Vec<f32> {
        let name = (self.keys.checkpoint_name)(name);
        let n: usize = shape.iter().product();
        let problem = match self.file.as_ref().map(|f| f.tensor(&name)) {
            None | Some(Err(_)) => TensorProblem::Missing {
                name: name.clone(),
                expected: shape.to_vec(),
            },
            Some(Ok(view)) if view.shape() != shape => TensorProblem::Shape {
                name: name.clone(),
                expected: shape.to_vec(),
                found: view.shape().to_vec(),
            },
            Some(Ok(view)) => match decode(view.dtype(), view.data()) {
                Some(values) => {
                    self.taken.insert(name);
                    return values;
                }
                None => TensorProblem::Dtype {
                    name: name.clone(),
                    dtype: format!("{:?}", view.dtype()),
                },
            },
        };
        self.taken.insert(name);
        self.problems.push(problem);
        vec![0.0; n]
    }

    /// All problems found while building, plus tensors the architecture never asked for (except those the
    /// key table says the image half never reads).
    pub fn finish(mut self) -> Result<(), WeightsError> {
        if let Some(file) = &self.file {
            let mut names = file.names();
            names.sort();
            for name in names {
                if !self.taken.contains(name) && !(self.keys.unused)(name) {
                    let found = file.tensor(name).map(|v| v.shape().to_vec());
                    self.problems.push(TensorProblem::Unexpected {
                        name: name.to_string(),
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

/// Little-endian F32, F16 or BF16 bytes → f32 values; `None` for any other dtype.
fn decode(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
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
        _ => return None,
    })
}

/// Records the checkpoint name (under `keys`) and shape of every tensor a builder asks for.
pub fn probe_names(
    device: &Device,
    keys: KeyTable,
    build: impl FnOnce(&mut WeightStore),
) -> BTreeMap<String, Vec<usize>> {
    let mut store = WeightStore {
        file: None,
        keys,
        taken: BTreeSet::new(),
        problems: vec![],
        device: device.clone(),
    };
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

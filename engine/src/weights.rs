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

/// Tensors decoded to f32, handed out by name to the model code that builds modules.
pub struct WeightStore {
    tensors: TensorMap,
    taken: BTreeSet<String>,
    problems: Vec<TensorProblem>,
    device: Device,
}

impl WeightStore {
    /// Parse safetensors bytes. Fails only when the file itself is unreadable; per-tensor problems are
    /// reported by [`WeightStore::finish`].
    pub fn from_safetensors(bytes: &[u8], device: &Device) -> Result<Self, WeightsError> {
        let st =
            SafeTensors::deserialize(bytes).map_err(|e| WeightsError::Corrupt(e.to_string()))?;
        let mut tensors = BTreeMap::new();
        let mut problems = Vec::new();
        for (name, view) in st.tensors() {
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
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
                other => {
                    problems.push(TensorProblem::Dtype {
                        name: name.clone(),
                        dtype: format!("{other:?}"),
                    });
                    continue;
                }
            };
            tensors.insert(name, (view.shape().to_vec(), values));
        }
        Ok(WeightStore {
            tensors,
            taken: BTreeSet::new(),
            problems,
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

    /// The raw values of `name`, checked to have `shape`.
    pub fn values(&mut self, name: &str, shape: &[usize]) -> Vec<f32> {
        self.taken.insert(name.to_string());
        let n: usize = shape.iter().product();
        match self.tensors.get(name) {
            None => self.problems.push(TensorProblem::Missing {
                name: name.into(),
                expected: shape.to_vec(),
            }),
            Some((found, _)) if found != shape => self.problems.push(TensorProblem::Shape {
                name: name.into(),
                expected: shape.to_vec(),
                found: found.clone(),
            }),
            Some((_, values)) => return values.clone(),
        }
        vec![0.0; n]
    }

    /// Names present in the file, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// All problems found while building, plus tensors the architecture never asked for.
    pub fn finish(mut self) -> Result<(), WeightsError> {
        for (name, (shape, _)) in &self.tensors {
            if !self.taken.contains(name) {
                self.problems.push(TensorProblem::Unexpected {
                    name: name.clone(),
                    found: shape.clone(),
                });
            }
        }
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(WeightsError::Mismatch(self.problems))
        }
    }
}

/// Records the name and shape of every tensor a builder asks for.
pub fn probe_names(
    device: &Device,
    build: impl FnOnce(&mut WeightStore),
) -> BTreeMap<String, Vec<usize>> {
    let mut store = WeightStore {
        tensors: BTreeMap::new(),
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

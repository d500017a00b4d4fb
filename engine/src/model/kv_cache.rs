//! The transformer's run state: the keys and values of every position seen so far, per layer, preallocated
//! to the positions one generation needs (its prompt and its image, never the model's `max_seq`). The caller owns it and can reset it; the weights never change.

use burn::tensor::{Device, Tensor, TensorData};

use crate::config::TransformerConfig;
use crate::kernels::{self, host_values};

/// Every layer's keys and values, `[B, H, capacity, hd]` each, of which the first `len` positions are filled.
#[derive(Debug)]
pub struct KvCache {
    pub(crate) layers: Vec<LayerCache>,
    pub(crate) len: usize,
    capacity: usize,
}

impl KvCache {
    /// Empty buffers for `batch` rows (2 with guidance) and `capacity` positions on `device`.
    pub fn new(config: &TransformerConfig, batch: usize, capacity: usize, device: &Device) -> Self {
        let shape = [batch, config.n_heads, capacity, config.head_dim()];
        let layer = || LayerCache {
            shape,
            buffers: if kernels::on_host(device) {
                Buffers::Host {
                    keys: vec![0.0; shape.iter().product()],
                    values: vec![0.0; shape.iter().product()],
                }
            } else {
                Buffers::Device {
                    keys: Some(Tensor::zeros(shape, device)),
                    values: Some(Tensor::zeros(shape, device)),
                }
            },
        };
        KvCache {
            layers: (0..config.n_layers).map(|_| layer()).collect(),
            len: 0,
            capacity,
        }
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forget every position (the buffers are reused).
    pub fn reset(&mut self) {
        self.len = 0;
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// One layer's keys and values.
#[derive(Debug)]
pub(crate) struct LayerCache {
    /// `[B, H, capacity, hd]`
    pub(crate) shape: [usize; 4],
    pub(crate) buffers: Buffers,
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per layer, never moved in a loop: boxing would buy nothing
pub(crate) enum Buffers {
    /// On a GPU: device tensors (`Option` only so a step can own them while it writes; always `Some` between
    /// steps).
    Device {
        keys: Option<Tensor<4>>,
        values: Option<Tensor<4>>,
    },
    /// On the CPU: host buffers, which a decode step's attention reads in place
    /// (`kernels::host_attention`).
    Host { keys: Vec<f32>, values: Vec<f32> },
}

impl LayerCache {
    /// Writes `k` and `v` `[B, H, T, hd]` at positions `start..start + T`.
    pub(crate) fn append(&mut self, k: Tensor<4>, v: Tensor<4>, start: usize) {
        let [b, h, t, hd] = k.dims();
        match &mut self.buffers {
            Buffers::Host { keys, values } => {
                let capacity = self.shape[2];
                write_positions(keys, &host_values(k), capacity, start, t, hd);
                write_positions(values, &host_values(v), capacity, start, t, hd);
            }
            Buffers::Device { keys, values } => {
                let range = [0..b, 0..h, start..start + t, 0..hd];
                // Taken out of the cache so they are uniquely owned and `slice_assign` writes in place (a
                // shared buffer would be copied whole, every step).
                let write = |buffer: &mut Option<Tensor<4>>, rows: Tensor<4>| {
                    let full = buffer.take().expect("cache buffers are always present");
                    *buffer = Some(full.slice_assign(range.clone(), rows));
                };
                write(keys, k);
                write(values, v);
            }
        }
    }

    /// The keys and values of positions `0..len`, `[B, H, len, hd]` each (a copy, on the host).
    pub(crate) fn filled(&self, len: usize) -> (Tensor<4>, Tensor<4>) {
        let [b, h, capacity, hd] = self.shape;
        match &self.buffers {
            Buffers::Host { keys, values } => {
                let filled = |buffer: &[f32]| {
                    let data = buffer
                        .chunks_exact(capacity * hd)
                        .flat_map(|head| &head[..len * hd])
                        .copied()
                        .collect::<Vec<_>>();
                    Tensor::from_data(TensorData::new(data, [b, h, len, hd]), &Device::flex())
                };
                (filled(keys), filled(values))
            }
            Buffers::Device { keys, values } => {
                let filled = |buffer: &Option<Tensor<4>>| {
                    let full = buffer.clone().expect("cache buffers are always present");
                    full.narrow(2, 0, len)
                };
                (filled(keys), filled(values))
            }
        }
    }
}

/// Copies `rows` `[B·H, T, hd]` into `buffer` `[B·H, capacity, hd]` at positions `start..start + T`.
fn write_positions(
    buffer: &mut [f32],
    rows: &[f32],
    capacity: usize,
    start: usize,
    t: usize,
    hd: usize,
) {
    for (head, rows) in buffer
        .chunks_exact_mut(capacity * hd)
        .zip(rows.chunks_exact(t * hd))
    {
        head[start * hd..(start + t) * hd].copy_from_slice(rows);
    }
}

//! Weights loaded as their bytes arrive: one safetensors file after another (a model's single file, or the
//! shards of a Janus folder), each in pieces of any size, as the browser's downloads and its model cache
//! hand them over. Each tensor is prepared the way the model's build takes it ([`Take`]: uploaded to the
//! device, transposed, or kept on the host) the moment its last byte arrives, and its bytes are dropped, so
//! loading holds at most one tensor's bytes and its f32 copy besides the piece in hand and the model so far.
//!
//! Every file's header is checked against the architecture as soon as it has arrived, so a file that cannot
//! load is refused before its tensors are downloaded; its sha256 is computed as the bytes pass and checked
//! when the file ends. [`StreamedWeights`] is then the [`TensorSource`] the model is built from.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;

use burn::tensor::Device;
use safetensors::Dtype;
use safetensors::tensor::Metadata;
use sha2::{Digest, Sha256};

use super::{
    KeyTable, MAX_TENSORS, MAX_WEIGHT_BYTES, Prepared, Take, TensorProblem, TensorSource,
    WeightsError, problem,
};
use crate::error::{Result, TesseraError};
use crate::model::{WeightsIdentity, check_sha256, hex, list_identity};

/// The name of a model's one weight file.
pub const SINGLE_FILE: &str = "model.safetensors";

/// The longest safetensors header accepted (the format's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Weights arriving file by file: [`begin_file`](Self::begin_file), [`push`](Self::push) pieces,
/// [`end_file`](Self::end_file); then build the model from it (`Model::from_streamed`).
pub struct StreamedWeights {
    /// Checkpoint name → the shape the architecture needs and how the build takes it.
    layout: BTreeMap<String, (Vec<usize>, Take)>,
    keys: KeyTable,
    device: Device,
    /// Every tensor of the files so far (those never read too): dtype and shape, and the file it is in.
    tensors: BTreeMap<String, (Dtype, Vec<usize>, usize)>,
    /// Tensors prepared and not yet taken by the build.
    prepared: RefCell<BTreeMap<String, Prepared>>,
    /// The finished files: name and sha256, in order.
    files: Vec<(String, String)>,
    file: Option<Arriving>,
    /// Bytes of all finished files.
    bytes: u64,
    /// The most bytes of one tensor held while its pieces arrived.
    peak_partial: u64,
}

/// The file whose bytes are arriving.
struct Arriving {
    name: String,
    expected_sha256: Option<String>,
    hasher: Sha256,
    /// Bytes so far.
    received: u64,
    /// The 8-byte header length and the JSON header, until both are complete.
    head: Vec<u8>,
    body: Option<Body>,
}

/// A file's tensors once its header is read, in the order of their bytes.
struct Body {
    /// File offset of the first tensor byte.
    data_start: u64,
    /// The file's size, as its header describes it.
    size: u64,
    tensors: Vec<Entry>,
    /// The tensor whose bytes come next.
    next: usize,
    /// Its bytes so far, when they span several pieces.
    partial: Vec<u8>,
}

/// One tensor of a file's header.
struct Entry {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Offsets of its first byte and past its last, from the start of the data.
    begin: u64,
    end: u64,
    /// How the model takes it; `None` for a tensor it never reads.
    take: Option<Take>,
}

impl StreamedWeights {
    /// Weights for a model whose tensors are `layout` (checkpoint name → shape and [`Take`], from
    /// `weights::probe`), named as `keys` says, built on `device`.
    pub fn new(
        layout: BTreeMap<String, (Vec<usize>, Take)>,
        keys: KeyTable,
        device: &Device,
    ) -> Self {
        StreamedWeights {
            layout,
            keys,
            device: device.clone(),
            tensors: BTreeMap::new(),
            prepared: RefCell::new(BTreeMap::new()),
            files: Vec::new(),
            file: None,
            bytes: 0,
            peak_partial: 0,
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The file `name` starts; with `expected_sha256` (hex) its bytes must hash to it.
    pub fn begin_file(&mut self, name: &str, expected_sha256: Option<&str>) -> Result<()> {
        if let Some(open) = &self.file {
            return Err(self.file_error(name, format!("it began before {} ended", open.name)));
        }
        if self.files.iter().any(|(done, _)| done == name) {
            return Err(self.file_error(name, "it was loaded already".to_string()));
        }
        self.file = Some(Arriving {
            name: name.to_string(),
            expected_sha256: expected_sha256.map(|s| s.trim().to_string()),
            hasher: Sha256::new(),
            received: 0,
            head: Vec::new(),
            body: None,
        });
        Ok(())
    }

    /// The next `piece` of the file begun last. Its header is checked against the architecture the moment
    /// it is complete (every problem of the file at once); a tensor is prepared when its last byte arrives.
    pub fn push(&mut self, piece: &[u8]) -> Result<()> {
        let Some(mut file) = self.file.take() else {
            return Err(TesseraError::Config(
                "weight bytes arrived before any file began".to_string(),
            ));
        };
        file.hasher.update(piece);
        let uploads = self.prepared.borrow().len();
        let outcome = self.consume(&mut file, piece);
        if self.prepared.borrow().len() > uploads {
            // The device's queue holds each upload's bytes until it is submitted: hand them over now, so
            // host memory holds one piece's tensors, not the whole file's.
            self.device
                .flush()
                .map_err(|e| TesseraError::Device(format!("{e:?}")))?;
        }
        file.received += piece.len() as u64;
        self.file = Some(file);
        outcome
    }

    /// The file begun last is complete: it must hold every byte its header describes and, when one was
    /// given, hash to its expected sha256.
    pub fn end_file(&mut self) -> Result<()> {
        let Some(file) = self.file.take() else {
            return Err(TesseraError::Config("no weight file was begun".to_string()));
        };
        let size = file.body.as_ref().map(|b| b.size);
        if size != Some(file.received) {
            let described = match size {
                Some(size) => format!("the {size} its header describes"),
                None => "its whole header".to_string(),
            };
            return Err(self.file_error(
                &file.name,
                format!(
                    "it ended after {} bytes, before {described}; it may be truncated: download it again",
                    file.received
                ),
            ));
        }
        let sha256 = hex(&file.hasher.finalize());
        if let Some(expected) = &file.expected_sha256 {
            check_sha256(&sha256, expected)?;
        }
        self.bytes += file.received;
        self.files.push((file.name, sha256));
        Ok(())
    }

    /// What identifies the weights once every file has ended: as a model folder's (`Checkpoint::identity`),
    /// the one file's sha256, or that of the files' list in `sha256sum`'s format, in name order.
    pub fn identity(&self) -> Result<WeightsIdentity> {
        if let Some(open) = &self.file {
            return Err(self.file_error(&open.name, "it has not ended".to_string()));
        }
        // In name order, as a folder on disk lists its shards, whatever order they arrived in.
        let mut files = self.files.clone();
        files.sort();
        let list: String = files
            .iter()
            .map(|(name, sum)| format!("{sum}  {name}\n"))
            .collect();
        if list.is_empty() {
            return Err(TesseraError::Config(
                "no weight file was loaded".to_string(),
            ));
        }
        Ok(list_identity(&list, self.files.len(), self.bytes))
    }

    /// The most bytes of one tensor the stream held while its pieces arrived (a tensor within one piece is
    /// prepared from the piece and not counted): what loading holds besides the piece in hand, the tensor's
    /// f32 copy and the model built so far.
    pub fn peak_partial_bytes(&self) -> u64 {
        self.peak_partial
    }

    fn file_error(&self, name: &str, reason: String) -> TesseraError {
        WeightsError::File {
            path: name.to_string(),
            reason,
        }
        .into()
    }

    fn consume(&mut self, file: &mut Arriving, mut piece: &[u8]) -> Result<()> {
        let mut at = file.received; // file offset of piece[0]
        while file.body.is_none() {
            let wanted = match file.head.len() {
                n if n < 8 => 8 - n,
                n => (8 + head_length(&file.head) - n as u64) as usize,
            };
            let n = wanted.min(piece.len());
            file.head.extend_from_slice(&piece[..n]);
            (piece, at) = (&piece[n..], at + n as u64);
            if file.head.len() == 8 && head_length(&file.head) > MAX_HEADER_BYTES {
                return Err(self.corrupt(
                    &file.name,
                    format!(
                        "its header claims {} bytes, more than a safetensors header may hold",
                        head_length(&file.head)
                    ),
                ));
            }
            if file.head.len() >= 8 && file.head.len() as u64 == 8 + head_length(&file.head) {
                file.body = Some(self.read_header(file)?);
                file.head = Vec::new();
            } else if piece.is_empty() {
                return Ok(()); // the piece ended within the header
            }
        }
        let body = file.body.as_mut().expect("the header was read");
        while !piece.is_empty() {
            let Some(entry) = body.tensors.get(body.next) else {
                return Err(self.corrupt(
                    &file.name,
                    format!(
                        "it holds more bytes than the {} its header describes",
                        body.size
                    ),
                ));
            };
            let (begin, end) = (body.data_start + entry.begin, body.data_start + entry.end);
            let n = ((end - at) as usize).min(piece.len());
            let (bytes, rest) = piece.split_at(n);
            if let Some(take) = entry.take {
                let prepared = if at == begin && at + n as u64 == end {
                    // The whole tensor is in this piece: prepared from it, never copied.
                    Some(Prepared::new(
                        take,
                        entry.dtype,
                        &entry.shape,
                        bytes,
                        &self.device,
                    ))
                } else {
                    body.partial.extend_from_slice(bytes);
                    self.peak_partial = self.peak_partial.max(body.partial.len() as u64);
                    (at + n as u64 == end).then(|| {
                        let bytes = std::mem::take(&mut body.partial);
                        Prepared::new(take, entry.dtype, &entry.shape, &bytes, &self.device)
                    })
                };
                if let Some(prepared) = prepared {
                    self.prepared
                        .borrow_mut()
                        .insert(entry.name.clone(), prepared);
                }
            }
            (piece, at) = (rest, at + n as u64);
            if at == end {
                body.next += 1;
            }
        }
        Ok(())
    }

    /// The complete header of `file`, checked: valid safetensors, within the caps, each tensor in one file
    /// only, and each tensor the architecture needs of the right shape and dtype.
    fn read_header(&mut self, file: &Arriving) -> Result<Body> {
        let header: Metadata = serde_json::from_slice(&file.head[8..])
            .map_err(|e| self.corrupt(&file.name, format!("its header is not valid: {e}")))?;
        let index = self.files.len();
        let mut problems = Vec::new();
        let mut tensors = Vec::new();
        for name in header.offset_keys() {
            let info = header
                .info(&name)
                .expect("offset_keys names the header's tensors");
            if let Some((_, _, other)) = self.tensors.get(&name) {
                let other = &self.files[*other].0;
                return Err(self.corrupt(&file.name, format!("tensor `{name}` is in {other} too")));
            }
            let take = match self.layout.get(&name) {
                Some((expected, take)) => {
                    let found = (info.dtype, info.shape.clone());
                    match problem(&name, expected, Some(&found)) {
                        Some(p) => {
                            problems.push(p);
                            None
                        }
                        None => Some(*take),
                    }
                }
                None if (self.keys.unused)(&name) => None,
                None => {
                    problems.push(TensorProblem::Unexpected {
                        name: name.clone(),
                        found: info.shape.clone(),
                    });
                    None
                }
            };
            self.tensors
                .insert(name.clone(), (info.dtype, info.shape.clone(), index));
            let (begin, end) = info.data_offsets;
            tensors.push(Entry {
                name,
                dtype: info.dtype,
                shape: info.shape.clone(),
                begin: begin as u64,
                end: end as u64,
                take,
            });
        }
        if !problems.is_empty() {
            return Err(WeightsError::Mismatch(problems).into());
        }
        if self.tensors.len() > MAX_TENSORS {
            return Err(WeightsError::TooManyTensors {
                count: self.tensors.len(),
                limit: MAX_TENSORS,
            }
            .into());
        }
        let data_start = file.head.len() as u64;
        let size = data_start + header.data_len() as u64;
        if self.bytes + size > MAX_WEIGHT_BYTES {
            return Err(WeightsError::TooLarge {
                bytes: self.bytes + size,
                limit: MAX_WEIGHT_BYTES,
            }
            .into());
        }
        Ok(Body {
            data_start,
            size,
            tensors,
            next: 0,
            partial: Vec::new(),
        })
    }

    fn corrupt(&self, name: &str, reason: String) -> TesseraError {
        self.file_error(
            name,
            format!("{reason}; it may be truncated or corrupt: download it again"),
        )
    }
}

/// The header length a safetensors file's first 8 bytes give.
fn head_length(head: &[u8]) -> u64 {
    u64::from_le_bytes(head[..8].try_into().expect("eight bytes"))
}

impl TensorSource for StreamedWeights {
    fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    fn info(&self, name: &str) -> Option<(Dtype, Vec<usize>)> {
        let (dtype, shape, _) = self.tensors.get(name)?;
        Some((*dtype, shape.clone()))
    }

    fn read(&self, name: &str) -> std::result::Result<Cow<'_, [u8]>, String> {
        match self.tensors.get(name) {
            Some((_, _, file)) => Err(format!(
                "its bytes in {} were not kept (it was already taken, or its file has not ended)",
                self.files
                    .get(*file)
                    .map_or("the file", |(name, _)| name.as_str())
            )),
            None => Err("it is in no file loaded".to_string()),
        }
    }

    fn take(&self, name: &str) -> Option<Prepared> {
        self.prepared.borrow_mut().remove(name)
    }
}

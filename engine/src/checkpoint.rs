//! A model folder's weight files on disk, read one tensor at a time, in each layout people download:
//! `model.safetensors`; safetensors shards with their index (`model.safetensors.index.json`, the Hugging
//! Face layout: `weight_map` of tensor name → file); or a PyTorch pickle (`pytorch_model.bin`, as
//! `torch.save(state_dict)` writes it), read by `pytorch-reader` without Python. And [`ShardWriter`], which
//! writes the folder format the browser loads (`tessera convert`, `tessera init`).
//!
//! Holding one tensor's bytes at a time is what lets a model larger than the memory left for a second copy
//! load at all: the file is never read whole.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use safetensors::Dtype;
use safetensors::tensor::{Metadata, TensorView};
use sha2::{Digest, Sha256};

use crate::error::{Result, TesseraError};
use crate::model::{WeightsIdentity, check_sha256, hex, list_identity};
use crate::weights::{FloatFormat, TensorSource, WeightsError};

/// The single safetensors file of a model folder.
pub const SAFETENSORS: &str = crate::weights::stream::SINGLE_FILE;
/// The index of a sharded one.
pub const SAFETENSORS_INDEX: &str = "model.safetensors.index.json";
/// A PyTorch pickle.
pub const PICKLE: &str = "pytorch_model.bin";
/// The expected sha256 of each weight file, as `sha256sum` writes them.
pub const SHA256_LIST: &str = "model.sha256";

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TesseraError {
    WeightsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
    .into()
}

/// The weight files of a model folder, opened (headers parsed, sizes checked) but not read.
pub struct Checkpoint {
    dir: PathBuf,
    /// The weight files, in the order their sha256 list gives them (shards sorted by name).
    files: Vec<String>,
    source: Box<dyn TensorSource + Send + Sync>,
}

impl Checkpoint {
    /// The weights of the folder `dir`: `model.safetensors`, else the shards its index names, else
    /// `pytorch_model.bin`.
    pub fn open(dir: &Path) -> Result<Self> {
        let (files, source): (Vec<String>, Box<dyn TensorSource + Send + Sync>) = if dir
            .join(SAFETENSORS)
            .exists()
        {
            let file = SafetensorsFile::open(&dir.join(SAFETENSORS))?;
            (vec![SAFETENSORS.into()], Box::new(file))
        } else if dir.join(SAFETENSORS_INDEX).exists() {
            let shards = Shards::open(dir)?;
            (shards.file_names(), Box::new(shards))
        } else if dir.join(PICKLE).exists() {
            (
                vec![PICKLE.into()],
                Box::new(Pickle::open(&dir.join(PICKLE))?),
            )
        } else {
            return Err(TesseraError::Config(format!(
                "{} holds no weights: it needs {SAFETENSORS}, {SAFETENSORS_INDEX} with its shards, or {PICKLE}",
                dir.display()
            )));
        };
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            files,
            source,
        })
    }

    pub fn source(&self) -> &dyn TensorSource {
        self.source.as_ref()
    }

    /// The weight files' sha256s (streamed, never read whole), checked against `model.sha256` when the
    /// folder has one. The identity is the one file's sha256, or for several files the sha256 of their list
    /// in `sha256sum`'s format.
    pub fn identity(&self) -> Result<WeightsIdentity> {
        let text = std::fs::read_to_string(self.dir.join(SHA256_LIST)).ok();
        let expected = text.as_deref().map(parse_sha256_list);
        let mut list = String::new();
        let mut bytes = 0;
        for name in &self.files {
            let path = self.dir.join(name);
            let (sum, size) = sha256_file(&path)?;
            if let Some(expected) = &expected {
                let want = expected
                    .get(name.as_str())
                    .or_else(|| (self.files.len() == 1).then(|| expected.get("")).flatten())
                    .ok_or_else(|| {
                        file_error(
                            &self.dir.join(SHA256_LIST),
                            format!("it lists no sha256 for {name}"),
                        )
                    })?;
                check_sha256(&sum, want)?;
            }
            list.push_str(&format!("{sum}  {name}\n"));
            bytes += size;
        }
        Ok(list_identity(&list, self.files.len(), bytes))
    }
}

/// `model.sha256` lines (`<hex>  <file>`) → file → hex; a line with no file name is filed under "".
fn parse_sha256_list(text: &str) -> HashMap<&str, &str> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let sum = parts.next()?;
            let name = parts.next().unwrap_or("").trim_start_matches('*');
            Some((name, sum))
        })
        .collect()
}

/// The sha256 (hex) and size of a file, read in blocks.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut file = File::open(path).map_err(|e| file_error(path, e))?;
    let mut hasher = Sha256::new();
    let mut block = vec![0; 1 << 20];
    let mut size = 0;
    loop {
        let n = file.read(&mut block).map_err(|e| file_error(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&block[..n]);
        size += n as u64;
    }
    Ok((hex(&hasher.finalize()), size))
}

/// One safetensors file: its header parsed, each tensor read from the file when asked for.
struct SafetensorsFile {
    path: PathBuf,
    file: Mutex<File>,
    header: Metadata,
    /// Where the tensor data starts: after the 8-byte length and the JSON header.
    data_start: u64,
}

impl SafetensorsFile {
    fn open(path: &Path) -> Result<Self> {
        let corrupt = |reason: String| {
            file_error(
                path,
                format!("{reason}; it may be truncated or corrupt: download it again"),
            )
        };
        let mut file = File::open(path).map_err(|e| file_error(path, e))?;
        let size = file.metadata().map_err(|e| file_error(path, e))?.len();
        let mut length = [0; 8];
        file.read_exact(&mut length)
            .map_err(|_| corrupt(format!("it holds {size} bytes, too few for a header")))?;
        let n = u64::from_le_bytes(length);
        if n > size.saturating_sub(8) || n > 100 << 20 {
            return Err(corrupt(format!(
                "its header claims {n} bytes, but the file holds {size}"
            )));
        }
        let mut json = vec![0; n as usize];
        file.read_exact(&mut json)
            .map_err(|e| corrupt(e.to_string()))?;
        let header: Metadata = serde_json::from_slice(&json)
            .map_err(|e| corrupt(format!("its header is not valid: {e}")))?;
        let data_start = 8 + n;
        let expected = data_start + header.data_len() as u64;
        if size != expected {
            return Err(corrupt(format!(
                "it holds {size} bytes, but its header describes {expected}"
            )));
        }
        Ok(SafetensorsFile {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            header,
            data_start,
        })
    }
}

impl TensorSource for SafetensorsFile {
    fn names(&self) -> Vec<String> {
        self.header.offset_keys()
    }

    fn info(&self, name: &str) -> Option<(Dtype, Vec<usize>)> {
        let info = self.header.info(name)?;
        Some((info.dtype, info.shape.clone()))
    }

    fn read(&self, name: &str) -> std::result::Result<Cow<'_, [u8]>, String> {
        let info = self.header.info(name).ok_or("not in the file")?;
        let (start, end) = info.data_offsets;
        let mut bytes = vec![0; end - start];
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.seek(SeekFrom::Start(self.data_start + start as u64))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        Ok(Cow::Owned(bytes))
    }
}

/// Safetensors shards and their index.
struct Shards {
    files: Vec<(String, SafetensorsFile)>,
    /// Tensor name → index into `files`.
    owner: BTreeMap<String, usize>,
}

#[derive(serde::Deserialize)]
struct ShardIndex {
    weight_map: BTreeMap<String, String>,
}

impl Shards {
    fn open(dir: &Path) -> Result<Self> {
        let index_path = dir.join(SAFETENSORS_INDEX);
        let text = std::fs::read(&index_path).map_err(|e| file_error(&index_path, e))?;
        let index: ShardIndex =
            serde_json::from_slice(&text).map_err(|e| file_error(&index_path, e))?;
        let mut file_names: Vec<&String> = index.weight_map.values().collect();
        file_names.sort();
        file_names.dedup();
        let mut files = vec![];
        for file in file_names {
            if file.contains(['/', '\\']) {
                return Err(file_error(
                    &index_path,
                    format!("its shard `{file}` is not a file name in the folder"),
                ));
            }
            files.push((file.clone(), SafetensorsFile::open(&dir.join(file))?));
        }
        let mut owner = BTreeMap::new();
        for (tensor, file) in &index.weight_map {
            let at = files
                .iter()
                .position(|(name, _)| name == file)
                .expect("every shard was opened");
            if files[at].1.header.info(tensor).is_none() {
                return Err(file_error(
                    &dir.join(file),
                    format!(
                        "{SAFETENSORS_INDEX} puts tensor `{tensor}` in it, but it is not there"
                    ),
                ));
            }
            owner.insert(tensor.clone(), at);
        }
        Ok(Shards { files, owner })
    }

    fn file_names(&self) -> Vec<String> {
        self.files.iter().map(|(name, _)| name.clone()).collect()
    }

    fn file_of(&self, name: &str) -> Option<&SafetensorsFile> {
        self.owner.get(name).map(|&at| &self.files[at].1)
    }
}

impl TensorSource for Shards {
    fn names(&self) -> Vec<String> {
        self.owner.keys().cloned().collect()
    }

    fn info(&self, name: &str) -> Option<(Dtype, Vec<usize>)> {
        self.file_of(name)?.info(name)
    }

    fn read(&self, name: &str) -> std::result::Result<Cow<'_, [u8]>, String> {
        self.file_of(name).ok_or("not in any shard")?.read(name)
    }
}

/// A PyTorch pickle: `pytorch-reader` parses its metadata at open and reads a tensor's bytes when asked.
struct Pickle {
    path: PathBuf,
    tensors: HashMap<String, pytorch_reader::Tensor>,
}

impl Pickle {
    fn open(path: &Path) -> Result<Self> {
        let reader = pytorch_reader::PytorchReader::new(path).map_err(|e| {
            file_error(
                path,
                format!("{e}; it may be truncated or corrupt: download it again"),
            )
        })?;
        Ok(Pickle {
            path: path.to_path_buf(),
            tensors: reader.into_tensors(),
        })
    }
}

/// The safetensors dtype of a pickled tensor's element type.
fn pickle_dtype(dtype: pytorch_reader::DType) -> Dtype {
    use pytorch_reader::DType as P;
    match dtype {
        P::F64 => Dtype::F64,
        P::F32 => Dtype::F32,
        P::F16 => Dtype::F16,
        P::BF16 => Dtype::BF16,
        P::I64 => Dtype::I64,
        P::I32 => Dtype::I32,
        P::I16 => Dtype::I16,
        P::I8 => Dtype::I8,
        P::U64 => Dtype::U64,
        P::U32 => Dtype::U32,
        P::U16 => Dtype::U16,
        P::U8 => Dtype::U8,
        P::Bool => Dtype::BOOL,
    }
}

impl TensorSource for Pickle {
    fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    fn info(&self, name: &str) -> Option<(Dtype, Vec<usize>)> {
        let t = self.tensors.get(name)?;
        Some((pickle_dtype(t.dtype()), t.shape().to_vec()))
    }

    /// The bytes `pytorch-reader` gives are the host's byte order: little-endian on every target the
    /// engine is built for.
    fn read(&self, name: &str) -> std::result::Result<Cow<'_, [u8]>, String> {
        let t = self.tensors.get(name).ok_or("not in the file")?;
        t.read()
            .map(Cow::Owned)
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

/// Writes tensors as the folder format the browser loads, into a staging folder renamed into place at
/// the end (so a failure leaves nothing at the destination): one `model.safetensors` when everything
/// fits one shard, else `model-00001-of-0000N.safetensors` shards and their `model.safetensors.index.json`;
/// and `model.sha256` listing every weight file. The caller adds `config.json` (and `tokenizer.json`)
/// with [`ShardWriter::add_file`].
pub struct ShardWriter {
    out: PathBuf,
    staging: PathBuf,
    shard_bytes: usize,
    /// The shard being gathered: name, dtype, shape, bytes.
    pending: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    pending_bytes: usize,
    /// Tensor names of each shard written so far (as `shard-N.partial` in the staging folder).
    shards: Vec<Vec<String>>,
    total_bytes: usize,
    finished: bool,
}

impl ShardWriter {
    /// A writer for the new folder `out` (which must not exist yet), in shards of at most `shard_bytes` of
    /// tensor data (a tensor larger than that gets a shard of its own).
    pub fn new(out: &Path, shard_bytes: usize) -> Result<Self> {
        if out.exists() {
            return Err(TesseraError::Config(format!(
                "{} already exists: give a new folder to write the model to",
                out.display()
            )));
        }
        let mut staging = out.as_os_str().to_owned();
        staging.push(".partial");
        let staging = PathBuf::from(staging);
        let _ = std::fs::remove_dir_all(&staging); // an earlier run's leftovers
        std::fs::create_dir_all(&staging).map_err(|e| file_error(&staging, e))?;
        Ok(ShardWriter {
            out: out.to_path_buf(),
            staging,
            shard_bytes,
            pending: vec![],
            pending_bytes: 0,
            shards: vec![],
            total_bytes: 0,
            finished: false,
        })
    }

    /// Add one tensor (little-endian bytes of `dtype`, row-major `shape`).
    pub fn push(
        &mut self,
        name: String,
        dtype: Dtype,
        shape: Vec<usize>,
        bytes: Vec<u8>,
    ) -> Result<()> {
        if !self.pending.is_empty() && self.pending_bytes + bytes.len() > self.shard_bytes {
            self.write_shard()?;
        }
        self.pending_bytes += bytes.len();
        self.total_bytes += bytes.len();
        self.pending.push((name, dtype, shape, bytes));
        Ok(())
    }

    /// Copy a file into the folder under `name`.
    pub fn add_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.staging.join(name);
        std::fs::write(&path, bytes).map_err(|e| file_error(&path, e))
    }

    fn shard_path(&self, i: usize) -> PathBuf {
        self.staging.join(format!("shard-{i}.partial"))
    }

    fn write_shard(&mut self) -> Result<()> {
        let path = self.shard_path(self.shards.len());
        let views = self
            .pending
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                TensorView::new(*dtype, shape.clone(), bytes).map(|view| (name.clone(), view))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| file_error(&path, e))?;
        safetensors::serialize_to_file(views, None, &path).map_err(|e| file_error(&path, e))?;
        self.shards
            .push(self.pending.drain(..).map(|(name, ..)| name).collect());
        self.pending_bytes = 0;
        Ok(())
    }

    /// Write the last shard, name the shards, write the index and `model.sha256`, and move the folder into
    /// place; returns the identity the loader will give it.
    pub fn finish(mut self) -> Result<WeightsIdentity> {
        if !self.pending.is_empty() || self.shards.is_empty() {
            self.write_shard()?;
        }
        let n = self.shards.len();
        let names: Vec<String> = match n {
            1 => vec![SAFETENSORS.into()],
            _ => (1..=n)
                .map(|i| format!("model-{i:05}-of-{n:05}.safetensors"))
                .collect(),
        };
        let mut list = String::new();
        let mut bytes = 0;
        for (i, name) in names.iter().enumerate() {
            let path = self.staging.join(name);
            std::fs::rename(self.shard_path(i), &path).map_err(|e| file_error(&path, e))?;
            let (sum, size) = sha256_file(&path)?;
            list.push_str(&format!("{sum}  {name}\n"));
            bytes += size;
        }
        if n > 1 {
            let weight_map: BTreeMap<&str, &str> = self
                .shards
                .iter()
                .zip(&names)
                .flat_map(|(tensors, file)| {
                    tensors.iter().map(move |t| (t.as_str(), file.as_str()))
                })
                .collect();
            let index = serde_json::json!({
                "metadata": { "total_size": self.total_bytes },
                "weight_map": weight_map,
            });
            self.add_file(
                SAFETENSORS_INDEX,
                serde_json::to_string_pretty(&index)
                    .expect("a JSON value serialises")
                    .as_bytes(),
            )?;
        }
        self.add_file(SHA256_LIST, list.as_bytes())?;
        std::fs::rename(&self.staging, &self.out).map_err(|e| file_error(&self.out, e))?;
        self.finished = true;
        Ok(list_identity(&list, n, bytes))
    }
}

impl Drop for ShardWriter {
    /// A writer dropped before [`ShardWriter::finish`] (an error part-way) removes what it wrote.
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// Tensor data written per shard by `tessera convert` unless told otherwise: what a browser fetches and
/// keeps as one piece.
pub const SHARD_BYTES: usize = 512 << 20;

/// `tessera convert`: the model folder `src` (any layout [`Checkpoint`] reads) rewritten as the folder
/// format the browser loads, at `out` (a new folder): only the tensors the image half reads (by the
/// family's key table), in `format` where given (else as stored), in shards of `shard_bytes`, with
/// `config.json`, `tokenizer.json` when `src` has one, and `model.sha256`. Every tensor is checked
/// against the config first; on any failure nothing is left at `out`.
pub fn convert(
    src: &Path,
    out: &Path,
    format: Option<FloatFormat>,
    shard_bytes: usize,
) -> Result<WeightsIdentity> {
    use crate::config::ModelConfig;
    use crate::model::Model;
    use crate::weights::{KeyTable, Stored, WeightStore, check_header, decode, encode};
    use burn::tensor::Device;

    let config_path = src.join("config.json");
    let config_json = std::fs::read(&config_path).map_err(|e| file_error(&config_path, e))?;
    let config = ModelConfig::from_json(&config_json)?;
    config.validate().map_err(TesseraError::Config)?;
    let checkpoint = Checkpoint::open(src)?;
    checkpoint.identity()?; // a download that fails its own sha256 list is not converted
    let device = Device::flex();
    let architecture = Model::architecture(&config, &device);
    let unused = crate::model::keys(&config).unused;
    // Every problem, before anything is written.
    check_header(checkpoint.source(), &architecture, unused, &device)?;
    // The architecture's names are already the checkpoint's; what the family never reads is skipped.
    let table = KeyTable {
        checkpoint_name: str::to_string,
        unused,
    };
    let mut store = WeightStore::new(checkpoint.source(), table, &device);
    let mut writer = ShardWriter::new(out, shard_bytes)?;
    for (name, shape) in architecture {
        let Some(Stored { dtype, bytes }) = store.stored(&name, &shape) else {
            continue; // a read error: recorded, and reported by `finish` below
        };
        let (dtype, bytes) = match (format, dtype) {
            (None, dtype) => (dtype, bytes.into_owned()),
            (Some(FloatFormat::F32), Dtype::F32)
            | (Some(FloatFormat::F16), Dtype::F16)
            | (Some(FloatFormat::Bf16), Dtype::BF16) => (dtype, bytes.into_owned()),
            (Some(format), dtype) => encode(&name, &decode(dtype, &bytes), format)?,
        };
        writer.push(name, dtype, shape, bytes)?;
    }
    store.finish()?;
    writer.add_file("config.json", &config_json)?;
    let tokenizer = src.join("tokenizer.json");
    if tokenizer.exists() {
        let bytes = std::fs::read(&tokenizer).map_err(|e| file_error(&tokenizer, e))?;
        writer.add_file("tokenizer.json", &bytes)?;
    }
    writer.finish()
}

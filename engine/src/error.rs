//! The engine's errors. Each says what went wrong and what the user can do next; the CLI prints them as one
//! line and the browser worker sends their `name()` and message to the page.

use crate::weights::WeightsError;

#[derive(Debug, thiserror::Error)]
pub enum TesseraError {
    #[error(
        "the prompt is empty: describe the picture you want, e.g. \"a big red circle in the center\""
    )]
    EmptyPrompt,
    #[error(
        "the prompt is {bytes} bytes long; this model reads at most {limit} bytes of text: shorten it"
    )]
    PromptTooLong { bytes: usize, limit: usize },
    #[error("--{name} {value} is invalid: {reason}")]
    Setting {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("the model config is invalid: {0}")]
    Config(String),
    #[error("the image could not be read: {0}")]
    Image(String),
    #[error("the compute device failed: {0}")]
    Device(String),
    #[error(
        "this request is refused by the prompt policy (rule `{rule}`, {category}, matched {matched}): {reason}"
    )]
    Refused {
        rule: String,
        category: String,
        reason: String,
        matched: String,
    },
    #[error("the prompt policy is invalid: {0}")]
    Policy(String),
}

impl TesseraError {
    /// A stable name for the error kind, for scripts and the browser's error handling.
    pub fn name(&self) -> &'static str {
        match self {
            TesseraError::EmptyPrompt => "EmptyPrompt",
            TesseraError::PromptTooLong { .. } => "PromptTooLong",
            TesseraError::Setting { .. } => "InvalidSetting",
            TesseraError::Weights(_) => "BadWeights",
            TesseraError::Config(_) => "BadConfig",
            TesseraError::Image(_) => "BadImage",
            TesseraError::Device(_) => "DeviceError",
            TesseraError::Refused { .. } => "PolicyRefused",
            TesseraError::Policy(_) => "BadPolicy",
        }
    }
}

pub type Result<T, E = TesseraError> = std::result::Result<T, E>;

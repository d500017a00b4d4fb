//! One module per subcommand: its arguments and what it does.

pub mod bench;
pub mod convert;
pub mod data;
pub mod eval;
pub mod generate;
pub mod init;
pub mod inspect;
pub mod interpret;
pub mod policy;
pub mod tokenize;
pub mod verify;

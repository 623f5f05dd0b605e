//! The one error of loading a config.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    // The TOML error is the source, not part of this message: `{e:#}` (main's output) prints
    // the chain, and printed it twice when both held it.
    #[error("config is not valid TOML or has unknown or mistyped keys")]
    Parse(#[from] toml::de::Error),
    #[error("environment override {var}: {why}")]
    Env { var: String, why: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

//! Loading: the file (or nothing), then `PAYGATE_<SECTION>__<KEY>` overrides, then validation.

use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::sections::Config;
use super::validate::validate;

impl Config {
    /// Reads `path` (or nothing: every default), applies environment overrides, validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (text, base_dir) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                (text, dir)
            }
            None => (String::new(), PathBuf::from(".")),
        };
        Config::from_toml_with_env(&text, std::env::vars(), base_dir)
    }

    pub fn from_toml_with_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
        base_dir: PathBuf,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = text.parse()?;
        apply_env_overrides(&mut table, env)?;
        let mut config: Config = toml::Value::Table(table).try_into()?;
        config.base_dir = base_dir;
        validate(&config)?;
        Ok(config)
    }
}

/// `PAYGATE_DATABASE__URL=…` sets `[database] url`. Values are read as TOML when they parse
/// (numbers, booleans, arrays), else as plain strings.
fn apply_env_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (var, value) in env {
        let Some(rest) = var.strip_prefix("PAYGATE_") else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            continue;
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        let err = |why: &str| ConfigError::Env {
            var: var.clone(),
            why: why.to_owned(),
        };
        if section.is_empty() || key.is_empty() || key.contains("__") {
            return Err(err("expected PAYGATE_<SECTION>__<KEY>"));
        }
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(value.clone()));
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(t) => {
                t.insert(key, parsed);
            }
            _ => return Err(err("that section is not a table")),
        }
    }
    Ok(())
}

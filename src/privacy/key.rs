//! Where the pseudonym key comes from (`[privacy] pseudonym_key_file`). The key itself and the
//! pseudonyms it makes are pure ([`crate::domain::pseudonym`]); reading its file is here.

use anyhow::Context;

use crate::config::Config;
use crate::domain::PseudonymKey;

// An inherent impl outside `domain/`: the one `PseudonymKey` function that does I/O stays
// above the domain, while `PseudonymKey::load` keeps reading as it always did.
impl PseudonymKey {
    /// `[privacy] pseudonym_key_file` (its text, without the line end, is the key), or a
    /// generated one in sandbox mode, or none: erasures are then refused.
    pub fn load(config: &Config, sandbox: bool) -> anyhow::Result<Option<PseudonymKey>> {
        match &config.privacy.pseudonym_key_file {
            Some(file) => {
                let path = config.resolve(file);
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let key = text.trim_end_matches(['\n', '\r']).as_bytes().to_vec();
                PseudonymKey::new(key)
                    .with_context(|| format!("[privacy] pseudonym_key_file {}", path.display()))
                    .map(Some)
            }
            None if sandbox => Ok(Some(PseudonymKey::generate())),
            None => Ok(None),
        }
    }
}

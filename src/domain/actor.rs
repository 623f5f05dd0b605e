//! Who started an action that moves money or personal data (a refund, an erasure request, a
//! reconciliation run): stored beside the action and carried in its events, so the audit trail
//! and an order's timeline name a person or a program (DESIGN.md §6).

use std::fmt;

/// A console user's name: 1 to 32 of `[a-z0-9._-]`, starting with a letter or digit. It is
/// shown in audit rows and events, so it is a handle (`li.wei`), never an e-mail or phone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsoleUserName(String);

impl ConsoleUserName {
    pub const MAX_LEN: usize = 32;

    pub fn parse(text: &str) -> Option<ConsoleUserName> {
        let b = text.as_bytes();
        let ok = (1..=Self::MAX_LEN).contains(&b.len())
            && b[0].is_ascii_alphanumeric()
            && b.iter().all(|&c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'_' || c == b'-'
            });
        ok.then(|| ConsoleUserName(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConsoleUserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who did it, as stored and shown: `console:<name>`, `api_key:<id>`, `cli`, `job:<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A person signed in to the console.
    Console(ConsoleUserName),
    /// A program, by the id of its `[[api_keys]]` entry.
    ApiKey(String),
    /// The command line (`paygate refund …`), run by whoever may run the binary.
    Cli,
    /// A scheduled job of this gateway (`reconciliation`, `erasure`, …).
    Job(&'static str),
}

impl Actor {
    /// The stored form read back; `None` when it is none of the four forms.
    pub fn parse(text: &str) -> Option<Actor> {
        if text == "cli" {
            return Some(Actor::Cli);
        }
        let (kind, rest) = text.split_once(':')?;
        match kind {
            "console" => ConsoleUserName::parse(rest).map(Actor::Console),
            "api_key" if !rest.is_empty() => Some(Actor::ApiKey(rest.to_owned())),
            "job" => JOBS.iter().find(|&&j| j == rest).map(|&j| Actor::Job(j)),
            _ => None,
        }
    }
}

/// The jobs that start actions with an actor (DESIGN.md §10).
const JOBS: [&str; 9] = [
    "active_query",
    "expire",
    "refunds",
    "platform_keys",
    "events",
    "reconciliation",
    "entitlement_expiry",
    "erasure",
    "retention",
];

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Console(name) => write!(f, "console:{name}"),
            Actor::ApiKey(id) => write!(f, "api_key:{id}"),
            Actor::Cli => f.write_str("cli"),
            Actor::Job(name) => write!(f, "job:{name}"),
        }
    }
}

impl serde::Serialize for Actor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_actor_reads_back_as_written() {
        let actors = [
            Actor::Console(ConsoleUserName::parse("li.wei").unwrap()),
            Actor::ApiKey("checkout-service".into()),
            Actor::Cli,
            Actor::Job("reconciliation"),
        ];
        for a in actors {
            assert_eq!(Actor::parse(&a.to_string()), Some(a.clone()), "{a}");
        }
        for bad in ["", "console:", "console:Li", "api_key:", "job:nope", "root"] {
            assert_eq!(Actor::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_console_name_is_a_short_lowercase_handle() {
        for ok in ["demo", "li.wei", "a", "ops-2", "x_y"] {
            assert!(ConsoleUserName::parse(ok).is_some(), "{ok}");
        }
        let long = "a".repeat(33);
        for bad in [
            "",
            "Li",
            ".a",
            "-a",
            "a b",
            "li@x.cn",
            "李伟",
            long.as_str(),
        ] {
            assert!(ConsoleUserName::parse(bad).is_none(), "{bad}");
        }
    }
}

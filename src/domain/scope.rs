//! What a caller may do: the scopes of API keys (`[[api_keys]]`) and of console users alike
//! (DESIGN.md §4, §7 console).

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Checkout,
    Entitlements,
    Finance,
    /// Account deletions (erasure requests).
    Privacy,
}

impl Scope {
    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "checkout" => Some(Scope::Checkout),
            "entitlements" => Some(Scope::Entitlements),
            "finance" => Some(Scope::Finance),
            "privacy" => Some(Scope::Privacy),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scope::Checkout => "checkout",
            Scope::Entitlements => "entitlements",
            Scope::Finance => "finance",
            Scope::Privacy => "privacy",
        }
    }

    pub const ALL: [Scope; 4] = [
        Scope::Checkout,
        Scope::Entitlements,
        Scope::Finance,
        Scope::Privacy,
    ];
}

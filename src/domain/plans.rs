//! The plan catalog: what an employer can buy and what each plan grants.

use serde::{Deserialize, Serialize};

use super::money::Fen;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    View,
    Download,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::View => "view",
            Action::Download => "download",
        }
    }

    pub fn parse(text: &str) -> Option<Action> {
        match text {
            "view" => Some(Action::View),
            "download" => Some(Action::Download),
            _ => None,
        }
    }
}

/// One right a plan grants: an action, a quota (None = unlimited), and how long it lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub action: Action,
    #[serde(default)]
    pub quota: Option<i64>,
    pub days: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub price: Fen,
    pub grants: Vec<Grant>,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    plans: Vec<Plan>,
}

impl Catalog {
    pub fn new(plans: Vec<Plan>) -> Catalog {
        Catalog { plans }
    }

    /// DESIGN.md §5's built-in catalog.
    pub fn builtin() -> Catalog {
        let plan = |id: &str, name: &str, fen: i64, grant: Grant| Plan {
            id: id.to_owned(),
            name: name.to_owned(),
            price: Fen::new(fen).expect("built-in prices are positive"),
            grants: vec![grant],
        };
        Catalog::new(vec![
            plan(
                "resume-view-30d",
                "简历查看 30 天",
                9900,
                Grant {
                    action: Action::View,
                    quota: None,
                    days: 30,
                },
            ),
            plan(
                "resume-download-50",
                "简历下载 50 份",
                19900,
                Grant {
                    action: Action::Download,
                    quota: Some(50),
                    days: 90,
                },
            ),
            plan(
                "resume-download-200",
                "简历下载 200 份",
                59900,
                Grant {
                    action: Action::Download,
                    quota: Some(200),
                    days: 180,
                },
            ),
        ])
    }

    pub fn get(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }

    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }
}

//! The console's order search: any of order number, employer, status, provider, channel and
//! a creation-time range, newest first, keyset-paged on `(created_at, order_no)` so a page
//! deep in the list costs what the first one does (`payment_order_created`).

use super::db::Db;
use super::orders::{ORDER_COLUMNS, OrderRow, order_from_row};
use super::sql::Value;
use crate::domain::{Channel, EmployerId, OrderNo, OrderStatus, ProviderId};

/// What to look for; every field narrows, none set finds every order.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub order_no: Option<OrderNo>,
    pub employer: Option<EmployerId>,
    pub status: Option<OrderStatus>,
    pub provider: Option<ProviderId>,
    pub channel: Option<Channel>,
    /// Created at or after (epoch ms).
    pub from_ms: Option<i64>,
    /// Created before (epoch ms).
    pub to_ms: Option<i64>,
}

/// Where a page starts: after this order in the list's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub created_at: i64,
    pub order_no: OrderNo,
}

/// Up to `limit` orders matching `filter`, newest first, after `after`.
pub async fn search(
    db: &Db,
    filter: &OrderFilter,
    after: Option<&After>,
    limit: i64,
) -> Result<Vec<OrderRow>, sqlx::Error> {
    // Each condition is a fixed fragment; only its value is bound.
    let mut conditions: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let mut add = |fragment: &str, value: Value, values_len: usize| {
        conditions.push(fragment.replace('?', &format!("${}", values_len + 1)));
        value
    };
    let text = |s: &str| Value::Text(s.to_owned());
    for (fragment, value) in [
        (
            "order_no = ?",
            filter.order_no.as_ref().map(|v| text(v.as_str())),
        ),
        (
            "employer_id = ?",
            filter.employer.as_ref().map(|v| text(v.as_str())),
        ),
        ("status = ?", filter.status.map(|v| text(v.as_str()))),
        ("provider = ?", filter.provider.map(|v| text(v.as_str()))),
        ("channel = ?", filter.channel.map(|v| text(v.as_str()))),
        ("created_at >= ?", filter.from_ms.map(Value::Int)),
        ("created_at < ?", filter.to_ms.map(Value::Int)),
    ] {
        if let Some(value) = value {
            let v = add(fragment, value, values.len());
            values.push(v);
        }
    }
    if let Some(a) = after {
        let (t, o) = (values.len() + 1, values.len() + 2);
        conditions.push(format!(
            "(created_at < ${t} OR (created_at = ${t} AND order_no < ${o}))"
        ));
        values.push(a.created_at.into());
        values.push(a.order_no.as_str().into());
    }
    let filter_sql = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    values.push(limit.into());
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM payment_order {filter_sql}
         ORDER BY created_at DESC, order_no DESC LIMIT ${}",
        values.len()
    );
    db.lookup_all(&sql, &values, |r| order_from_row(r)).await
}

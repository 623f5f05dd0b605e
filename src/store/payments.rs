//! Payments: the one row per settled order with the provider's transaction id (unique per
//! provider, so one provider transaction can never settle two orders).

use super::db::Db;
use super::exec::Exec;
use super::sql::{Columns, corrupt, fen_of, millis_of, parsed};
use crate::domain::status::PaymentSource;
use crate::domain::{Currency, Fen, OrderNo, ProviderId};

#[derive(Debug, Clone)]
pub struct PaymentRow {
    pub payment_id: String,
    pub provider_txn_id: String,
    pub amount: Fen,
    pub currency: Currency,
    pub trade_type: Option<String>,
    pub bank_type: Option<String>,
    pub source: PaymentSource,
    pub paid_at: i64,
}

/// A payment to record, inside the settlement transaction.
#[derive(Debug, Clone)]
pub struct NewPayment<'a> {
    pub order_no: &'a OrderNo,
    pub provider: ProviderId,
    pub provider_txn_id: &'a str,
    pub amount: Fen,
    pub currency: Currency,
    pub trade_type: Option<&'a str>,
    pub bank_type: Option<&'a str>,
    pub source: PaymentSource,
    pub paid_ms: i64,
}

/// Records `p`; answers its new payment id. The same provider transaction id already recorded
/// (on another order) is a unique violation.
pub async fn insert(
    ex: &mut Exec<'_>,
    p: &NewPayment<'_>,
    now_ms: i64,
) -> Result<String, sqlx::Error> {
    let payment_id = crate::domain::ids::prefixed_id("pay");
    let values = [
        payment_id.as_str().into(),
        p.order_no.as_str().into(),
        p.provider.as_str().into(),
        p.provider_txn_id.into(),
        p.amount.into(),
        p.currency.as_str().into(),
        p.trade_type.into(),
        p.bank_type.into(),
        p.source.as_str().into(),
        p.paid_ms.into(),
        now_ms.into(),
    ];
    ex.execute(
        "INSERT INTO payment (payment_id, order_no, provider, provider_txn_id, amount_fen, currency,
                              trade_type, bank_type, source, paid_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &values,
    )
    .await?;
    Ok(payment_id)
}

/// What a provider transaction must match to be the payment recorded for an order.
#[derive(Debug, Clone, Copy)]
pub struct SettledBy<'a> {
    pub order_no: &'a OrderNo,
    pub provider: ProviderId,
    pub provider_txn_id: &'a str,
    pub amount: Fen,
    pub currency: Currency,
}

/// True when `paid` is exactly the payment recorded for its order: same provider transaction,
/// order, amount and currency. A lookup by key: a duplicate report needs no write.
pub async fn is_settled_by(db: &Db, paid: &SettledBy<'_>) -> Result<bool, sqlx::Error> {
    const SQL: &str = "SELECT order_no, amount_fen, currency FROM payment
         WHERE provider = $1 AND provider_txn_id = $2";
    let values = [paid.provider.as_str().into(), paid.provider_txn_id.into()];
    let found = db
        .lookup_optional(SQL, &values, |r| {
            Ok((
                r.column::<String>("order_no")?,
                r.column::<i64>("amount_fen")?,
                r.column::<String>("currency")?,
            ))
        })
        .await?;
    Ok(found.is_some_and(|(order_no, amount, currency)| {
        order_no == paid.order_no.as_str()
            && amount == paid.amount.get()
            && currency == paid.currency.as_str()
    }))
}

pub async fn payment_of<'e, E>(
    exec: E,
    order_no: &OrderNo,
) -> Result<Option<PaymentRow>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(
        "SELECT payment_id, provider_txn_id, amount_fen, currency, trade_type, bank_type, source, paid_at
         FROM payment WHERE order_no = $1",
    )
    .bind(order_no.as_str())
    .fetch_optional(exec)
    .await?;
    row.map(|r| payment_from_row(&r, "")).transpose()
}

/// The payment's columns as `{prefix}name` in a select (`p.` for the table aliased `p`).
pub(super) const PREFIXED_COLUMNS: &str = "p.payment_id AS pay_payment_id, \
     p.provider_txn_id AS pay_provider_txn_id, p.amount_fen AS pay_amount_fen, \
     p.currency AS pay_currency, p.trade_type AS pay_trade_type, p.bank_type AS pay_bank_type, \
     p.source AS pay_source, p.paid_at AS pay_paid_at";

/// A payment row whose columns are named `{prefix}payment_id`, `{prefix}amount_fen`, ….
pub(super) fn payment_from_row(r: &impl Columns, prefix: &str) -> Result<PaymentRow, sqlx::Error> {
    let column = |name: &str| format!("{prefix}{name}");
    let currency: String = r.column(column("currency").as_str())?;
    let source: String = r.column(column("source").as_str())?;
    Ok(PaymentRow {
        payment_id: r.column(column("payment_id").as_str())?,
        provider_txn_id: r.column(column("provider_txn_id").as_str())?,
        amount: fen_of("amount_fen", r.column(column("amount_fen").as_str())?)?,
        currency: Currency::parse(&currency).ok_or_else(|| corrupt("currency", &currency))?,
        trade_type: r.column(column("trade_type").as_str())?,
        bank_type: r.column(column("bank_type").as_str())?,
        source: parsed("source", &source, PaymentSource::parse)?,
        paid_at: millis_of("paid_at", r.column(column("paid_at").as_str())?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_payment_source_is_a_decode_error_naming_the_column() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let row = |source: &str| {
            let sql = format!(
                "SELECT 'pay_1' AS payment_id, 'tx1' AS provider_txn_id, 100 AS amount_fen,
                        'CNY' AS currency, NULL AS trade_type, NULL AS bank_type,
                        '{source}' AS source, 0 AS paid_at"
            );
            conn.query_row(&sql, [], |r| Ok(payment_from_row(r, "")))
                .unwrap()
        };
        assert_eq!(row("query").unwrap().source, PaymentSource::Query);
        let err = row("webhook").unwrap_err().to_string();
        assert!(err.contains("source"), "{err}");
    }
}

//! The discrepancy report as CSV (DESIGN.md §4 `discrepancies.csv`): what the API and the
//! console download. UTF-8 with a BOM so Excel reads it as such, one row per discrepancy,
//! streamed page by page; no payer data exists to put in it.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::domain::reconciliation::Discrepancy;
use crate::store::Db;
use crate::store::reconciliations::{self as store, RunRow};

/// Rows read per page.
const PAGE: i64 = 1000;

/// `duplicate_bill_amount` (last, so the columns before it keep their places): for
/// `duplicate_remote`, the amount of the row that repeats the transaction id; `bill_amount` is
/// the first row's.
const CSV_HEADER: &str = "class,kind,order_no,provider_transaction_id,refund_no,bill_amount,local_amount,bill_status,local_status,healed,note,duplicate_bill_amount\r\n";

/// One CSV cell: quoted when it must be, and never read as a formula by a spreadsheet.
fn cell(text: &str) -> String {
    let guarded = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if guarded.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

/// An amount in yuan ("50.00"); an empty cell when the row has none.
fn yuan(fen: Option<crate::domain::Fen>) -> String {
    fen.map(|f| f.to_string()).unwrap_or_default()
}

fn csv_line(d: &Discrepancy) -> String {
    let fields = [
        d.class.as_str().to_owned(),
        d.kind.as_str().to_owned(),
        d.order_no.clone().unwrap_or_default(),
        d.provider_txn_id.clone().unwrap_or_default(),
        d.refund_no.clone().unwrap_or_default(),
        yuan(d.bill_amount_fen),
        yuan(d.local_amount_fen),
        d.bill_status.clone().unwrap_or_default(),
        d.local_status.clone().unwrap_or_default(),
        if d.healed { "yes" } else { "no" }.to_owned(),
        d.note.clone().unwrap_or_default(),
        yuan(d.duplicate_amount_fen),
    ];
    let mut line = fields.iter().map(|f| cell(f)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

/// The file's name: `reconciliation-<provider>-<date>.csv`.
pub fn filename(run: &RunRow) -> String {
    format!("reconciliation-{}-{}.csv", run.provider, run.bill_date)
}

/// The report of run `id`: the header, then its discrepancies a page at a time.
pub fn stream(db: Db, id: String) -> impl Stream<Item = Result<Bytes, sqlx::Error>> + Send {
    let head = futures_util::stream::once(async {
        Ok::<Bytes, sqlx::Error>(Bytes::from(format!("\u{feff}{CSV_HEADER}")))
    });
    let pages = futures_util::stream::try_unfold(
        (db, id, 0i64, false),
        |(db, id, after, done)| async move {
            if done {
                return Ok(None);
            }
            let page = store::discrepancies(db.reader(), &id, after, PAGE).await?;
            let last = page.last().map(|(seq, _)| *seq);
            let text: String = page.iter().map(|(_, d)| csv_line(d)).collect();
            let done = last.is_none() || (page.len() as i64) < PAGE;
            Ok(Some((
                Bytes::from(text),
                (db, id, last.unwrap_or(after), done),
            )))
        },
    );
    head.chain(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_never_formulas() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"x\""), "\"say \"\"x\"\"\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("-1"), "'-1");
    }
}
